// Hugging Face config.json for LlamaForCausalLM: read into a LlamaConfig (every error
// names the file and the key) and written back in a form transformers loads.
#pragma once

#include <string>

#include "model/llama_config.h"

namespace xcomp {

// Reads and validates config.json; config.source is set to the path. Throws InputError
// naming the file and key for a missing key, a wrong type, a value out of range, an
// unsupported rope_scaling or hidden_act, or an architecture other than LLaMA.
LlamaConfig read_hf_config(const std::string& config_json_path);

// Writes config.json (LlamaForCausalLM, float32, no biases) atomically.
void write_hf_config(const LlamaConfig& config, const std::string& path);

}  // namespace xcomp
