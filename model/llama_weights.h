// The parameters of a LLaMA-family decoder, named as Hugging Face names them.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "model/llama_config.h"
#include "model/tensor.h"

namespace xcomp {

struct LlamaLayerWeights {
  Tensor attn_norm;  // [hidden]
  Tensor wq;         // [heads * head_dim, hidden]
  Tensor wk;         // [kv_heads * head_dim, hidden]
  Tensor wv;         // [kv_heads * head_dim, hidden]
  Tensor wo;         // [hidden, heads * head_dim]
  Tensor mlp_norm;   // [hidden]
  Tensor w_gate;     // [intermediate, hidden]
  Tensor w_up;       // [intermediate, hidden]
  Tensor w_down;     // [hidden, intermediate]
};

struct LlamaWeights {
  Tensor embed;       // [vocab, hidden]
  std::vector<LlamaLayerWeights> layers;
  Tensor final_norm;  // [hidden]
  Tensor lm_head;     // [vocab, hidden]; shares embed's storage when tied
};

// Every tensor a Hugging Face LlamaForCausalLM checkpoint of this config holds, with its
// shape, in a stable order (lm_head.weight only when the embeddings are not tied).
std::vector<std::pair<std::string, Shape>> llama_tensor_shapes(const LlamaConfig& config);

// Builds the weights from named tensors, converting each to F32. The caller has checked
// names and shapes (io/ does, with file names in its errors); this CHECKs them again.
LlamaWeights llama_weights_from_named(const LlamaConfig& config, const std::map<std::string, Tensor>& named);

// The reverse of llama_weights_from_named, sharing storage: for writing checkpoints.
std::vector<std::pair<std::string, Tensor>> llama_weights_to_named(const LlamaConfig& config, const LlamaWeights& weights);

// Row permutation between RoPE conventions for a q or k projection [heads * head_dim, in]:
// llama2.c and GGUF (GGML "normal" rope) rotate interleaved pairs (0,1),(2,3)...; Hugging
// Face rotates halves (i, i + head_dim/2). Returns a new tensor in the half convention.
Tensor permute_rope_interleaved_to_halves(const Tensor& w, int64_t heads);

}  // namespace xcomp
