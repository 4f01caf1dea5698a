// The LLaMA-family decoder, written once over the op set (model/ops.h): embedding,
// per layer RMSNorm -> grouped-query attention with RoPE -> RMSNorm -> SwiGLU MLP, final
// RMSNorm, LM head. Keys and values go through a KvCache, which can also hold a prefix
// of given K/V entries (a KV cache from earlier steps or a compressed prompt).
#pragma once

#include <vector>

#include "model/llama_config.h"
#include "model/llama_weights.h"
#include "model/lora.h"
#include "model/ops.h"
#include "model/tensor.h"

namespace xcomp {

// Per layer keys and values [B, capacity, kv_heads, head_dim] (after RoPE), and which
// entries may be attended [B, capacity]. Entries [0, length) are in use.
class KvCache {
 public:
  // Storage on the backend `ops` computes on.
  KvCache(const LlamaConfig& config, int64_t batch, int64_t capacity, Ops& ops);

  int64_t batch() const { return batch_; }
  int64_t capacity() const { return capacity_; }
  int64_t length() const { return length_; }
  int num_layers() const { return static_cast<int>(keys_.size()); }
  Tensor& keys(int layer) { return keys_.at(layer); }
  Tensor& values(int layer) { return values_.at(layer); }
  const Tensor& keys(int layer) const { return keys_.at(layer); }
  const Tensor& values(int layer) const { return values_.at(layer); }
  Tensor& key_valid() { return key_valid_; }

  // Appends P entries given per layer as [B, P, kv_heads, head_dim] (RoPE already
  // applied) with valid I32 [B, P]; for prefixes such as compressed prompts. The
  // inputs may be host or backend tensors.
  void append(const std::vector<Tensor>& keys, const std::vector<Tensor>& values, const Tensor& valid, Ops& ops);
  // Reserves the next t entries (the model writes them) and marks their validity
  // (valid: I32 [B, t], host or backend).
  int64_t reserve(int64_t t, const Tensor& valid, Ops& ops);
  void clear() { length_ = 0; }

 private:
  int64_t batch_, capacity_, length_ = 0;
  std::vector<Tensor> keys_, values_;
  Tensor key_valid_;
};

enum class LogitsFor { kAllPositions, kLastPosition };

class LlamaModel {
 public:
  // The weights are host tensors; the model keeps its own copies on the backend
  // (Ops::upload_weight; the CPU backend shares the given storage).
  LlamaModel(LlamaConfig config, LlamaWeights weights, Ops& ops);

  const LlamaConfig& config() const { return config_; }
  const LlamaWeights& weights() const { return weights_; }  // on the backend
  // The op set is the model's means of computation, not part of its state.
  Ops& ops() const { return ops_; }
  const Tensor& inv_freq() const { return inv_freq_; }

  // Runs tokens I32 [B, T] at RoPE positions I32 [B, T] with mask I32 [B, T] (1 real,
  // 0 padding: padded keys are never attended), attending to everything already in
  // `cache` and appending this call's K/V to it. Returns logits F32 [B, T, vocab], or
  // [B, vocab] for position T-1 of each row with kLastPosition. Token ids outside the
  // vocabulary are an InputError. Inputs and logits are host tensors. `adapters`: LoRA
  // applied in every layer as the training step applies it, without dropout (tensors on
  // this model's backend, lora_on_backend; only read), or null for the base model.
  Tensor forward(const Tensor& tokens, const Tensor& positions, const Tensor& mask, KvCache& cache,
                 LogitsFor which = LogitsFor::kAllPositions, LoraWeights* adapters = nullptr) const;
  // The same, host inputs, logits left on the backend (for losses computed there).
  Tensor forward_on_backend(const Tensor& tokens, const Tensor& positions, const Tensor& mask, KvCache& cache,
                            LogitsFor which = LogitsFor::kAllPositions, LoraWeights* adapters = nullptr) const;
  // The same from input embeddings F32 [B, T, hidden] (host or backend) instead of token
  // ids: for inputs that are no token's embedding (a compressed prompt's memory in
  // embedding mode). Host logits.
  Tensor forward_embeddings(const Tensor& embeddings, const Tensor& positions, const Tensor& mask, KvCache& cache,
                            LogitsFor which = LogitsFor::kAllPositions) const;

  // The final-norm hidden states F32 [B*T, hidden] of the same run, on the backend: the
  // LM head's input, for a caller that applies the head a few rows at a time.
  Tensor final_hidden_on_backend(const Tensor& tokens, const Tensor& positions, const Tensor& mask,
                                 KvCache& cache) const;

  // Trainable-free parameter count (every weight tensor, the tied head counted once).
  int64_t parameter_count() const;

 private:
  // Layers, final norm and head over x [B*T, hidden] on the backend (updated in place).
  Tensor run_layers(Tensor& x, int64_t b, int64_t t, const Tensor& positions, const Tensor& mask, KvCache& cache,
                    LogitsFor which, LoraWeights* adapters) const;
  // The layers and the final norm only: rmsnorm(x) after the last layer, [B*T, hidden].
  Tensor run_to_final_norm(Tensor& x, int64_t b, int64_t t, const Tensor& positions, const Tensor& mask,
                           KvCache& cache, LoraWeights* adapters) const;
  // x [B*T, hidden] on the backend from host token ids I32 [B, T], which are checked, as
  // are the shapes of positions and mask and the cache's batch.
  Tensor embed_tokens(const Tensor& tokens, const Tensor& positions, const Tensor& mask, const KvCache& cache) const;

  LlamaConfig config_;
  LlamaWeights weights_;
  Ops& ops_;
  Tensor inv_freq_;  // F32 [head_dim / 2]
};

}  // namespace xcomp
