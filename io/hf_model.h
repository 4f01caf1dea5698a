// Hugging Face model directories: config.json plus model.safetensors, or shards listed
// by model.safetensors.index.json. Tensors come back as views of the file mappings.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "model/llama_config.h"
#include "model/tensor.h"

namespace xcomp {

// Reads the weights of `dir` and checks them against llama_tensor_shapes(config): every
// expected tensor present exactly once across the shards, F32/F16/BF16, with its shape.
// Throws InputError naming the file and tensor otherwise. "lm_head.weight" of a tied
// model and "*.rotary_emb.inv_freq" buffers are skipped with a warning.
std::map<std::string, Tensor> read_hf_weights(const std::string& dir, const LlamaConfig& config);

struct HfModelDir {
  LlamaConfig config;
  std::map<std::string, Tensor> tensors;
};

// config.json (config.source is its path) and the weights it describes.
HfModelDir read_hf_model_dir(const std::string& dir);

// Creates `dir` when needed and writes config.json and model.safetensors, each atomically.
void write_hf_model_dir(const std::string& dir, const LlamaConfig& config,
                        const std::vector<std::pair<std::string, Tensor>>& tensors);

}  // namespace xcomp
