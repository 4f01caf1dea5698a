// llama2.c checkpoints (karpathy/llama2.c run.c format): a header of 7 int32 (dim,
// hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size
// means an unshared classifier follows the weights), then fp32 arrays. Read into a
// LlamaConfig and Hugging Face named tensors, with q/k rows permuted from llama2.c's
// interleaved RoPE pairs to Hugging Face's rotate-half layout.
#pragma once

#include <map>
#include <string>

#include "model/llama_config.h"
#include "model/tensor.h"

namespace xcomp {

struct Llama2cModel {
  LlamaConfig config;  // source = the .bin path
  // Hugging Face names (llama_tensor_shapes(config)); views of the mapping except the
  // permuted q and k projections.
  std::map<std::string, Tensor> tensors;
};

// Throws InputError naming the file for a bad header or a size other than the header implies.
Llama2cModel read_llama2c(const std::string& path);

// Converts a llama2.c checkpoint into a Hugging Face directory (config.json +
// model.safetensors). A tokenizer, when given, is copied in as tokenizer.model
// (SentencePiece) or tokenizer.bin (llama2.c format); other kinds are refused.
void convert_llama2c(const std::string& in_bin, const std::string& out_dir, const std::string& tokenizer_path);

}  // namespace xcomp
