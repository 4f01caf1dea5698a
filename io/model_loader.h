// Opens a model from whatever a user points at: a Hugging Face directory (config.json +
// safetensors, sharded or not), a GGUF file (dequantised on load) or a llama2.c .bin.
// All of them end as the same LlamaConfig + Hugging Face-named tensors.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "io/tokenizer.h"
#include "model/llama_config.h"
#include "model/llama_weights.h"
#include "model/tensor.h"

namespace xcomp {

struct LoadedModel {
  std::string format;  // "huggingface", "gguf" or "llama2c"
  LlamaConfig config;
  std::map<std::string, Tensor> tensors;  // Hugging Face names
  std::unique_ptr<Tokenizer> tokenizer;   // null when the model carries none
  bool add_bos = true;                    // whether prompts start with BOS for this tokenizer
};

enum class ModelWeights { kLoad, kSkipWhenCostly };

// tokenizer_path overrides the tokenizer found with the model (required for llama2.c
// files, which carry none). kSkipWhenCostly leaves `tensors` empty for GGUF files, whose
// weights must be dequantised (names and shapes are still checked); memory-mapped
// formats are always returned with their tensors.
LoadedModel load_model(const std::string& path, const std::string& tokenizer_path = "",
                       ModelWeights weights = ModelWeights::kLoad);

// The weights in F32, ready for the model code.
LlamaWeights load_weights(const LoadedModel& model);

// The input token embeddings alone, F32 [vocab, hidden]: a GGUF file dequantises just
// this tensor, the other formats copy it out of their memory maps.
Tensor load_token_embeddings(const std::string& path);

}  // namespace xcomp
