#include "model/compressor.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>

#include "model/input_error.h"
#include "model/llama_layer.h"
#include "model/random.h"

namespace xcomp {

namespace {

// Normal(0, std) from the counter-based generator (Box-Muller), for embeddings.
Tensor random_embeddings(int64_t rows, int64_t hidden, double std, uint64_t seed, uint64_t stream) {
  Tensor t = Tensor::empty({rows, hidden});
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double u1 = counter_random_uniform(seed, RandomPurpose::kInit, stream, 2 * i) + 1e-300;
    const double u2 = counter_random_uniform(seed, RandomPurpose::kInit, stream, 2 * i + 1);
    p[i] = static_cast<float>(std * std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2));
  }
  return t;
}

// The LoRA layers get streams 0.. of kInit; the embeddings use streams far above them.
constexpr uint64_t kTokenInitStream = 1u << 20;
constexpr uint64_t kAeInitStream = kTokenInitStream + 1;
// Compression and AE tokens start at the scale of typical hidden states entering layer 0.
constexpr double kTokenInitStd = 0.02;

}  // namespace

Compressor::Compressor(const LlamaConfig& config, const CompressorSettings& settings, uint64_t seed)
    : settings_(settings), lora_(config, settings.lora, seed) {
  if (settings.num_tokens < 1) throw_input_error("compressor.num_tokens must be at least 1, got ", settings.num_tokens);
  tokens_ = random_embeddings(settings.num_tokens, config.hidden_size, kTokenInitStd, seed, kTokenInitStream);
  tokens_grad_ = Tensor::zeros(tokens_.shape());
  if (settings.mode == CompressorMode::kEmbedding) {
    ae_token_ = random_embeddings(1, config.hidden_size, kTokenInitStd, seed, kAeInitStream);
    ae_token_grad_ = Tensor::zeros(ae_token_.shape());
  }
}

std::vector<Compressor::Named> Compressor::parameters() {
  std::vector<Named> out;
  out.push_back({"compression_tokens", &tokens_, &tokens_grad_});
  if (ae_token_.defined()) out.push_back({"ae_token", &ae_token_, &ae_token_grad_});
  for (const auto& p : lora_.parameters()) out.push_back({p.name, p.value, p.grad});
  return out;
}

int64_t Compressor::parameter_count() {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.value->numel();
  return n;
}

void Compressor::zero_grad(Ops& ops) {
  for (auto& p : parameters()) ops.zero(*p.grad);
}

namespace {

Tensor ints(Shape shape) { return Tensor::zeros(std::move(shape), DType::I32); }

// Everything the encoder pass leaves for the decoder and for its own backward pass.
struct EncoderPass {
  int64_t b = 0, l = 0, n = 0, t = 0;  // t = l + n
  Tensor positions, key_valid;          // I32 [B, t]
  std::vector<Tensor> keys, values;     // per layer [B, t, kv_heads, head_dim]
  std::vector<LayerActivations> saved;
  int layers = 0;
  Tensor final_input;  // embedding mode: residual stream before the final norm [B*t, hidden]
  Tensor memory;       // embedding mode: final hidden states at the compression positions [B, N, hidden]
};

// LoRA dropout is active only when training (a backward pass follows); masks differ per
// (step and micro-batch stream, layer).
LayerLora lora_for(Compressor& c, const StepOptions& o, int layer) {
  const float dropout = o.backward ? static_cast<float>(c.settings().lora.dropout) : 0.0f;
  return LayerLora{&c.lora(), dropout, o.dropout_seed, o.dropout_stream * 4096 + static_cast<uint64_t>(layer)};
}

// The encoder input is left-padded so the N compression tokens sit at the same rows
// [L, L + N) of every sample: row b holds its text at [L - len_b, L).
EncoderPass run_encoder(const LlamaModel& model, Compressor& comp, const Tensor& text,
                        const std::vector<int64_t>& lengths, const StepOptions& options, bool save) {
  const LlamaConfig& c = model.config();
  Ops& ops = model.ops();
  EncoderPass e;
  e.b = text.dim(0);
  e.l = text.dim(1);
  e.n = comp.settings().num_tokens;
  e.t = e.l + e.n;
  CHECK_EQ(static_cast<int64_t>(lengths.size()), e.b);
  Tensor ids = ints({e.b, e.t});
  e.positions = ints({e.b, e.t});
  e.key_valid = ints({e.b, e.t});
  for (int64_t r = 0; r < e.b; ++r) {
    const int64_t len = lengths[r], pad = e.l - len;
    CHECK(len >= 1 && len <= e.l) << "text length " << len << " outside [1, " << e.l << "]";
    for (int64_t i = pad; i < e.t; ++i) {
      if (i < e.l) ids.data<int32_t>()[r * e.t + i] = text.data<int32_t>()[r * e.l + i - pad];
      e.positions.data<int32_t>()[r * e.t + i] = static_cast<int32_t>(i - pad);
      e.key_valid.data<int32_t>()[r * e.t + i] = 1;
    }
  }
  Tensor x = Tensor::empty({e.b * e.t, c.hidden_size});
  ops.embedding(model.weights().embed, ids, x);
  Tensor rows = x.reshape({e.b, e.t, c.hidden_size});
  for (int64_t r = 0; r < e.b; ++r) {
    Tensor row = rows.slice0(r, r + 1);
    ops.write_rows(comp.tokens().reshape({1, e.n, c.hidden_size}), row, e.l);
  }

  const bool kv_mode = comp.settings().mode == CompressorMode::kKeyValue;
  e.layers = static_cast<int>(c.num_hidden_layers);
  if (save) e.saved.resize(e.layers);
  for (int layer = 0; layer < e.layers; ++layer) {
    e.keys.push_back(Tensor::zeros({e.b, e.t, c.num_key_value_heads, c.head_dim}));
    e.values.push_back(Tensor::zeros({e.b, e.t, c.num_key_value_heads, c.head_dim}));
    const LayerStore store{&e.keys[layer], &e.values[layer], &e.key_valid, 0, e.t};
    // In K/V mode the last layer matters only through its keys and values.
    const LayerExtent extent = kv_mode && layer == e.layers - 1 ? LayerExtent::kKeysValuesOnly : LayerExtent::kFull;
    layer_forward(model, layer, x, e.positions, store, lora_for(comp, options, layer), extent,
                  save ? &e.saved[layer] : nullptr);
  }
  if (!kv_mode) {
    e.final_input = x.clone();
    Tensor normed = Tensor::empty(x.shape());
    ops.rmsnorm(x, model.weights().final_norm, static_cast<float>(c.rms_norm_eps), normed);
    e.memory = Tensor::empty({e.b, e.n, c.hidden_size});
    ops.read_rows(normed.reshape({e.b, e.t, c.hidden_size}), e.l, e.memory);
  }
  return e;
}

// The decoder's view: a K/V prefix of N entries (K/V mode) or N memory embeddings
// ahead of the tokens (embedding mode).
struct DecoderPass {
  int64_t b = 0, t = 0, prefix = 0, rows = 0;  // rows: input positions per sample
  Tensor positions, key_valid, targets;       // I32 [B, rows], [B, prefix + t or rows], [B*rows]
  std::vector<Tensor> keys, values;
  std::vector<LayerActivations> saved;
  Tensor final_input;  // [B*rows, hidden]
  Tensor logits;       // [B*rows, vocab]
};

DecoderPass run_decoder(const LlamaModel& model, Compressor& comp, const EncoderPass& e, const CompressorBatch& batch,
                        const StepOptions& options, bool use_ae_token, bool save) {
  const LlamaConfig& c = model.config();
  Ops& ops = model.ops();
  const bool kv_mode = comp.settings().mode == CompressorMode::kKeyValue;
  DecoderPass d;
  d.b = batch.decoder_tokens.dim(0);
  d.t = batch.decoder_tokens.dim(1);
  CHECK_EQ(d.b, e.b);
  const int64_t n = e.n;
  // K/V mode: the prefix lives in the store; embedding mode: it is part of the input.
  d.prefix = kv_mode ? n : 0;
  d.rows = kv_mode ? d.t : n + d.t;
  const int64_t store_size = d.prefix + d.rows, lead = d.rows - d.t;  // lead: memory rows in the input
  d.positions = ints({d.b, d.rows});
  d.key_valid = ints({d.b, store_size});
  d.targets = Tensor::empty({d.b * d.rows}, DType::I32);
  for (int64_t r = 0; r < d.b; ++r) {
    // Embedding mode continues the memory's positions; K/V mode starts at N (reference)
    // or right after the compressed keys at len + N.
    const int64_t first = !kv_mode ? 0
                          : comp.settings().decoder_positions == DecoderPositions::kReference ? n
                                                                                              : batch.text_lengths[r] + n;
    for (int64_t i = 0; i < d.rows; ++i) d.positions.data<int32_t>()[r * d.rows + i] = static_cast<int32_t>(first + i);
    for (int64_t i = 0; i < store_size; ++i) {
      const int64_t token = i - d.prefix - lead;  // index into the decoder tokens, < 0 for the prefix/memory
      d.key_valid.data<int32_t>()[r * store_size + i] = token < batch.decoder_lengths[r] ? 1 : 0;
    }
    for (int64_t i = 0; i < d.rows; ++i) {
      const int64_t token = i - lead;
      d.targets.data<int32_t>()[r * d.rows + i] = token < 0 ? -1 : batch.targets.data<int32_t>()[r * d.t + token];
    }
  }

  Tensor x = Tensor::empty({d.b * d.rows, c.hidden_size});
  Tensor token_x = kv_mode ? x : Tensor::empty({d.b * d.t, c.hidden_size});
  ops.embedding(model.weights().embed, batch.decoder_tokens, token_x);
  Tensor token_rows = token_x.reshape({d.b, d.t, c.hidden_size});
  if (use_ae_token)
    for (int64_t r = 0; r < d.b; ++r) {
      Tensor row = token_rows.slice0(r, r + 1);
      ops.write_rows(comp.ae_token().reshape({1, 1, c.hidden_size}), row, 0);
    }
  if (!kv_mode) {
    Tensor rows = x.reshape({d.b, d.rows, c.hidden_size});
    ops.write_rows(e.memory, rows, 0);
    ops.write_rows(token_rows, rows, n);
  }

  if (save) d.saved.resize(c.num_hidden_layers);
  for (int layer = 0; layer < c.num_hidden_layers; ++layer) {
    d.keys.push_back(Tensor::zeros({d.b, store_size, c.num_key_value_heads, c.head_dim}));
    d.values.push_back(Tensor::zeros({d.b, store_size, c.num_key_value_heads, c.head_dim}));
    if (kv_mode) {
      Tensor k = Tensor::empty({d.b, n, c.num_key_value_heads, c.head_dim});
      Tensor v = Tensor::empty(k.shape());
      ops.read_rows(e.keys[layer], e.l, k);
      ops.read_rows(e.values[layer], e.l, v);
      ops.write_rows(k, d.keys[layer], 0);
      ops.write_rows(v, d.values[layer], 0);
    }
    const LayerStore store{&d.keys[layer], &d.values[layer], &d.key_valid, d.prefix, store_size};
    layer_forward(model, layer, x, d.positions, store, LayerLora{}, LayerExtent::kFull, save ? &d.saved[layer] : nullptr);
  }
  d.final_input = x;
  Tensor normed = Tensor::empty(x.shape());
  ops.rmsnorm(x, model.weights().final_norm, static_cast<float>(c.rms_norm_eps), normed);
  d.logits = Tensor::empty({d.b * d.rows, c.vocab_size});
  ops.linear(normed, model.weights().lm_head, d.logits);
  return d;
}

}  // namespace

CompressorLoss compressor_step(const LlamaModel& model, Compressor& comp, const CompressorBatch& batch,
                               const StepOptions& options) {
  const LlamaConfig& c = model.config();
  Ops& ops = model.ops();
  const bool kv_mode = comp.settings().mode == CompressorMode::kKeyValue;
  const bool use_ae_token = !kv_mode && options.ae_token;
  EncoderPass e = run_encoder(model, comp, batch.text, batch.text_lengths, options, options.backward);
  DecoderPass d = run_decoder(model, comp, e, batch, options, use_ae_token, options.backward);

  const int64_t m = d.b * d.rows;
  Tensor weights = Tensor::empty({m});
  for (int64_t i = 0; i < m; ++i) weights.data<float>()[i] = options.token_weight;
  Tensor losses = Tensor::empty({m});
  Tensor dlogits = Tensor::empty(d.logits.shape());
  ops.cross_entropy(d.logits, d.targets, weights, losses, dlogits);
  CompressorLoss loss;
  for (int64_t i = 0; i < m; ++i) {
    const int32_t target = d.targets.data<int32_t>()[i];
    if (target < 0) continue;
    loss.sum += losses.data<float>()[i];
    ++loss.targets;
    if (target == options.end_id) {
      loss.end_sum += losses.data<float>()[i];
      ++loss.end_targets;
    }
  }
  if (!options.backward) return loss;

  // Decoder backward: activation gradients only, down to the prefix (or memory).
  Tensor dnormed = Tensor::empty({m, c.hidden_size});
  ops.linear_backward_input(dlogits, model.weights().lm_head, dnormed, false);
  Tensor dx = Tensor::empty({m, c.hidden_size});
  ops.rmsnorm_backward(dnormed, d.final_input, model.weights().final_norm, static_cast<float>(c.rms_norm_eps), dx,
                       false);
  std::vector<Tensor> prefix_dk(c.num_hidden_layers), prefix_dv(c.num_hidden_layers);
  for (int layer = static_cast<int>(c.num_hidden_layers) - 1; layer >= 0; --layer) {
    Tensor dk = Tensor::zeros(d.keys[layer].shape()), dv = Tensor::zeros(d.values[layer].shape());
    const LayerStore store{&d.keys[layer], &d.values[layer], &d.key_valid, d.prefix, d.prefix + d.rows};
    layer_backward(model, layer, dx, d.positions, store, dk, dv, LayerLora{}, LayerExtent::kFull, d.saved[layer]);
    if (kv_mode) {
      prefix_dk[layer] = Tensor::empty({d.b, e.n, c.num_key_value_heads, c.head_dim});
      prefix_dv[layer] = Tensor::empty(prefix_dk[layer].shape());
      ops.read_rows(dk, 0, prefix_dk[layer]);
      ops.read_rows(dv, 0, prefix_dv[layer]);
    }
  }
  Tensor dx_rows = dx.reshape({d.b, d.rows, c.hidden_size});
  if (use_ae_token) {  // the AE token sits at memory row N of every sample
    Tensor ae_rows = Tensor::empty({d.b, 1, c.hidden_size});
    ops.read_rows(dx_rows, e.n, ae_rows);
    for (int64_t r = 0; r < d.b; ++r)
      ops.add_inplace(comp.ae_token_grad(), ae_rows.slice0(r, r + 1).reshape({1, c.hidden_size}));
  }

  // Encoder backward: from the prefix keys/values (K/V mode) or the memory rows through
  // the final norm (embedding mode), into LoRA and the compression tokens.
  Tensor dx_enc = Tensor::zeros({e.b * e.t, c.hidden_size});
  if (!kv_mode) {
    Tensor dmemory = Tensor::empty({d.b, e.n, c.hidden_size});
    ops.read_rows(dx_rows, 0, dmemory);
    Tensor dnormed_enc = Tensor::zeros({e.b, e.t, c.hidden_size});
    ops.write_rows(dmemory, dnormed_enc, e.l);
    ops.rmsnorm_backward(dnormed_enc, e.final_input, model.weights().final_norm, static_cast<float>(c.rms_norm_eps),
                         dx_enc, false);
  }
  for (int layer = e.layers - 1; layer >= 0; --layer) {
    Tensor dk = Tensor::zeros(e.keys[layer].shape()), dv = Tensor::zeros(e.values[layer].shape());
    if (kv_mode) {
      ops.write_rows(prefix_dk[layer], dk, e.l);
      ops.write_rows(prefix_dv[layer], dv, e.l);
    }
    const LayerExtent extent = kv_mode && layer == e.layers - 1 ? LayerExtent::kKeysValuesOnly : LayerExtent::kFull;
    const LayerStore store{&e.keys[layer], &e.values[layer], &e.key_valid, 0, e.t};
    layer_backward(model, layer, dx_enc, e.positions, store, dk, dv, lora_for(comp, options, layer), extent,
                   e.saved[layer]);
  }
  Tensor dtokens = Tensor::empty({e.b, e.n, c.hidden_size});
  ops.read_rows(dx_enc.reshape({e.b, e.t, c.hidden_size}), e.l, dtokens);
  for (int64_t r = 0; r < e.b; ++r)
    ops.add_inplace(comp.tokens_grad(), dtokens.slice0(r, r + 1).reshape(comp.tokens_grad().shape()));
  return loss;
}

CompressorLoss decoder_only_loss(const LlamaModel& model, const CompressorBatch& batch, int32_t end_id) {
  const int64_t b = batch.decoder_tokens.dim(0), t = batch.decoder_tokens.dim(1);
  Tensor positions = ints({b, t}), mask = ints({b, t});
  for (int64_t r = 0; r < b; ++r)
    for (int64_t i = 0; i < t; ++i) {
      positions.data<int32_t>()[r * t + i] = static_cast<int32_t>(i);
      mask.data<int32_t>()[r * t + i] = i < batch.decoder_lengths[r] ? 1 : 0;
    }
  KvCache cache(model.config(), b, t);
  const Tensor logits = model.forward(batch.decoder_tokens, positions, mask, cache);
  Tensor weights = Tensor::empty({b * t}), losses = Tensor::empty({b * t}), dlogits = Tensor::empty(logits.shape());
  std::fill(weights.data<float>(), weights.data<float>() + b * t, 1.0f);
  model.ops().cross_entropy(logits, batch.targets, weights, losses, dlogits);
  CompressorLoss loss;
  for (int64_t i = 0; i < b * t; ++i) {
    const int32_t target = batch.targets.data<int32_t>()[i];
    if (target < 0) continue;
    loss.sum += losses.data<float>()[i];
    ++loss.targets;
    if (target == end_id) {
      loss.end_sum += losses.data<float>()[i];
      ++loss.end_targets;
    }
  }
  return loss;
}

CompressedPrompt compress(const LlamaModel& model, Compressor& comp, const Tensor& text,
                          const std::vector<int64_t>& text_lengths) {
  const LlamaConfig& c = model.config();
  Ops& ops = model.ops();
  StepOptions options;
  options.backward = false;  // no LoRA dropout, nothing saved
  EncoderPass e = run_encoder(model, comp, text, text_lengths, options, false);
  CompressedPrompt p;
  p.mode = comp.settings().mode;
  p.text_lengths = text_lengths;
  if (p.mode == CompressorMode::kEmbedding) {
    p.embeddings = e.memory;
    return p;
  }
  for (int layer = 0; layer < e.layers; ++layer) {
    p.keys.push_back(Tensor::empty({e.b, e.n, c.num_key_value_heads, c.head_dim}));
    p.values.push_back(Tensor::empty(p.keys.back().shape()));
    ops.read_rows(e.keys[layer], e.l, p.keys.back());
    ops.read_rows(e.values[layer], e.l, p.values.back());
  }
  return p;
}

}  // namespace xcomp
