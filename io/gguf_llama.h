// A LLaMA-architecture model stored as GGUF (llama.cpp's format), read into what the
// rest of xcomp uses: a LlamaConfig, Hugging Face-named F32 tensors in Hugging Face's
// RoPE row order, and the tokenizer metadata.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "io/gguf.h"
#include "io/gguf_tokenizer_data.h"
#include "model/llama_config.h"
#include "model/tensor.h"

namespace xcomp {

struct GgufModel {
  LlamaConfig config;  // config.source is the GGUF path
  // Hugging Face names, F32, in llama_tensor_shapes(config) order.
  std::vector<std::pair<std::string, Tensor>> tensors;
  GgufTokenizerData tokenizer;
};

// Reads and dequantises the whole model (with kSkip: checks every tensor's name and shape
// but leaves `tensors` empty, for inspecting a file cheaply). Throws InputError naming the file (and the key
// or tensor) when it is not a LLaMA GGUF xcomp can read: another architecture, a missing
// or mistyped key, a missing, unexpected or misshapen tensor, an unsupported tensor type,
// or LLaMA-3.1 rope scaling (rope_freqs.weight), which is not mapped back yet.
enum class GgufWeights { kDequantize, kSkip };
GgufModel read_gguf_llama(const std::string& path, GgufWeights weights = GgufWeights::kDequantize);

// The tokenizer.ggml.* metadata and tokenizer.chat_template; tokens and model required.
GgufTokenizerData read_gguf_tokenizer(const GgufFile& file);

// The Hugging Face name of a LLaMA GGUF tensor ("blk.3.attn_q.weight" ->
// "model.layers.3.self_attn.q_proj.weight"); empty when the name is not one of them.
std::string gguf_to_hf_tensor_name(const std::string& gguf_name);

}  // namespace xcomp
