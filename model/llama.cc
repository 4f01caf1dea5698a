#include "model/llama.h"

#include <glog/logging.h>

#include "model/input_error.h"
#include "model/llama_layer.h"

namespace xcomp {

KvCache::KvCache(const LlamaConfig& config, int64_t batch, int64_t capacity, Ops& ops)
    : batch_(batch), capacity_(capacity) {
  CHECK_GT(batch, 0);
  CHECK_GT(capacity, 0);
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    keys_.push_back(ops.zeros({batch, capacity, config.num_key_value_heads, config.head_dim}));
    values_.push_back(ops.zeros({batch, capacity, config.num_key_value_heads, config.head_dim}));
  }
  key_valid_ = ops.zeros({batch, capacity}, DType::I32);
}

int64_t KvCache::reserve(int64_t t, const Tensor& valid, Ops& ops) {
  if (length_ + t > capacity_)
    throw_input_error("sequence of ", length_ + t, " positions exceeds the KV cache capacity of ", capacity_);
  CHECK_EQ(valid.numel(), batch_ * t);
  ops.write_rows(ops.upload(valid).reshape({batch_, t}), key_valid_, length_);
  int64_t start = length_;
  length_ += t;
  return start;
}

void KvCache::append(const std::vector<Tensor>& keys, const std::vector<Tensor>& values, const Tensor& valid,
                     Ops& ops) {
  CHECK_EQ(keys.size(), keys_.size());
  CHECK_EQ(values.size(), values_.size());
  const int64_t p = valid.numel() / batch_;
  const int64_t start = reserve(p, valid, ops);
  for (size_t l = 0; l < keys_.size(); ++l) {
    ops.write_rows(ops.upload(keys[l]), keys_[l], start);
    ops.write_rows(ops.upload(values[l]), values_[l], start);
  }
}

namespace {
// Every frozen weight where the backend computes, once; a tied head stays one tensor.
LlamaWeights weights_on_backend(const LlamaWeights& host, bool tied, Ops& ops) {
  LlamaWeights w;
  w.embed = ops.upload_weight(host.embed);
  w.final_norm = ops.upload_weight(host.final_norm);
  w.lm_head = tied && host.lm_head.raw() == host.embed.raw() ? w.embed : ops.upload_weight(host.lm_head);
  for (const LlamaLayerWeights& l : host.layers)
    w.layers.push_back({ops.upload_weight(l.attn_norm), ops.upload_weight(l.wq), ops.upload_weight(l.wk),
                        ops.upload_weight(l.wv), ops.upload_weight(l.wo), ops.upload_weight(l.mlp_norm),
                        ops.upload_weight(l.w_gate), ops.upload_weight(l.w_up), ops.upload_weight(l.w_down)});
  return w;
}

Tensor inverse_frequencies_tensor(const LlamaConfig& config) {
  std::vector<double> freqs = rope_inverse_frequencies(config);
  Tensor t = Tensor::empty({static_cast<int64_t>(freqs.size())});
  for (size_t i = 0; i < freqs.size(); ++i) t.data<float>()[i] = static_cast<float>(freqs[i]);
  return t;
}
}  // namespace

LlamaModel::LlamaModel(LlamaConfig config, LlamaWeights weights, Ops& ops)
    : config_(std::move(config)), ops_(ops) {
  CHECK_EQ(static_cast<int64_t>(weights.layers.size()), config_.num_hidden_layers);
  weights_ = weights_on_backend(weights, config_.tie_word_embeddings, ops_);
  inv_freq_ = ops_.upload(inverse_frequencies_tensor(config_));
}

int64_t LlamaModel::parameter_count() const {
  int64_t n = weights_.embed.numel() + weights_.final_norm.numel();
  if (!config_.tie_word_embeddings) n += weights_.lm_head.numel();
  for (const auto& l : weights_.layers)
    n += l.attn_norm.numel() + l.wq.numel() + l.wk.numel() + l.wv.numel() + l.wo.numel() + l.mlp_norm.numel() +
         l.w_gate.numel() + l.w_up.numel() + l.w_down.numel();
  return n;
}

Tensor LlamaModel::forward(const Tensor& tokens, const Tensor& positions, const Tensor& mask, KvCache& cache,
                           LogitsFor which, LoraWeights* adapters) const {
  return ops_.download(forward_on_backend(tokens, positions, mask, cache, which, adapters));
}

Tensor LlamaModel::embed_tokens(const Tensor& tokens, const Tensor& positions, const Tensor& mask,
                                const KvCache& cache) const {
  CHECK_EQ(tokens.ndim(), 2);
  CHECK_EQ(tokens.dim(0), cache.batch());
  CHECK(positions.shape() == tokens.shape() && mask.shape() == tokens.shape());
  const int32_t* ids = tokens.data<int32_t>();
  for (int64_t i = 0; i < tokens.numel(); ++i)
    if (ids[i] < 0 || ids[i] >= config_.vocab_size)
      throw_input_error("token id ", ids[i], " is outside the vocabulary [0, ", config_.vocab_size, ") of ",
                        config_.source);
  Tensor x = ops_.empty({tokens.numel(), config_.hidden_size});
  ops_.embedding(weights_.embed, ops_.upload(tokens), x);
  return x;
}

Tensor LlamaModel::forward_on_backend(const Tensor& tokens, const Tensor& positions, const Tensor& mask, KvCache& cache,
                                      LogitsFor which, LoraWeights* adapters) const {
  Tensor x = embed_tokens(tokens, positions, mask, cache);
  return run_layers(x, tokens.dim(0), tokens.dim(1), positions, mask, cache, which, adapters);
}

Tensor LlamaModel::final_hidden_on_backend(const Tensor& tokens, const Tensor& positions, const Tensor& mask,
                                           KvCache& cache) const {
  Tensor x = embed_tokens(tokens, positions, mask, cache);
  return run_to_final_norm(x, tokens.dim(0), tokens.dim(1), positions, mask, cache, nullptr);
}

Tensor LlamaModel::forward_embeddings(const Tensor& embeddings, const Tensor& positions, const Tensor& mask,
                                      KvCache& cache, LogitsFor which) const {
  CHECK_EQ(embeddings.ndim(), 3);
  const int64_t b = embeddings.dim(0), t = embeddings.dim(1), hidden = config_.hidden_size;
  CHECK_EQ(embeddings.dim(2), hidden);
  // The layers update their input in place, so they get a copy on the backend.
  Tensor x = ops_.empty({b * t, hidden});
  Tensor x_rows = x.reshape({1, b * t, hidden});
  ops_.write_rows(ops_.upload(embeddings).reshape({1, b * t, hidden}), x_rows, 0);
  return ops_.download(run_layers(x, b, t, positions, mask, cache, which, nullptr));
}

Tensor LlamaModel::run_layers(Tensor& x, int64_t b, int64_t t, const Tensor& positions, const Tensor& mask,
                              KvCache& cache, LogitsFor which, LoraWeights* adapters) const {
  const Tensor normed = run_to_final_norm(x, b, t, positions, mask, cache, adapters);
  const int64_t vocab = config_.vocab_size;
  if (which == LogitsFor::kAllPositions) {
    Tensor logits = ops_.empty({b, t, vocab});
    ops_.linear(normed, weights_.lm_head, logits);
    return logits;
  }
  Tensor logits = ops_.empty({b, vocab});
  for (int64_t row = 0; row < b; ++row) {
    Tensor out = logits.slice0(row, row + 1);
    ops_.linear(normed.slice0(row * t + t - 1, row * t + t), weights_.lm_head, out);
  }
  return logits;
}

Tensor LlamaModel::run_to_final_norm(Tensor& x, int64_t b, int64_t t, const Tensor& positions, const Tensor& mask,
                                     KvCache& cache, LoraWeights* adapters) const {
  const int64_t hidden = config_.hidden_size;
  CHECK_EQ(b, cache.batch());
  CHECK(positions.shape() == (Shape{b, t}) && mask.shape() == (Shape{b, t}));
  cache.reserve(t, mask, ops_);
  const Tensor backend_positions = ops_.upload(positions);
  LayerLora lora;  // inference: no dropout
  lora.weights = adapters;
  for (int layer = 0; layer < config_.num_hidden_layers; ++layer) {
    const LayerStore store{&cache.keys(layer), &cache.values(layer), &cache.key_valid(), cache.length() - t,
                           cache.length()};
    layer_forward(*this, layer, x, backend_positions, store, lora, LayerExtent::full(), nullptr);
  }
  Tensor normed = ops_.empty({b * t, hidden});
  ops_.rmsnorm(x, weights_.final_norm, static_cast<float>(config_.rms_norm_eps), normed);
  return normed;
}

}  // namespace xcomp
