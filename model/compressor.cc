#include "model/compressor.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>

#include "model/input_error.h"
#include "model/layer_memory.h"
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
  if (settings.mode != CompressorMode::kNone) {  // mode none: LoRA only, nothing is compressed
    if (settings.num_tokens < 1)
      throw_input_error("compressor.num_tokens must be at least 1, got ", settings.num_tokens);
    tokens_ = random_embeddings(settings.num_tokens, config.hidden_size, kTokenInitStd, seed, kTokenInitStream);
    tokens_grad_ = Tensor::zeros(tokens_.shape());
    if (settings.mode == CompressorMode::kEmbedding) {
      ae_token_ = random_embeddings(1, config.hidden_size, kTokenInitStd, seed, kAeInitStream);
      ae_token_grad_ = Tensor::zeros(ae_token_.shape());
    }
  }
  bind_gradients_to(Tensor::zeros({parameter_count()}));
}

void Compressor::bind_gradients_to(Tensor buffer) {
  CHECK(buffer.dtype() == DType::F32 && buffer.ndim() == 1 && buffer.numel() == parameter_count());
  gradient_buffer_ = std::move(buffer);
  int64_t at = 0;
  for (auto& p : parameters()) {
    const int64_t n = p.value->numel();
    *p.grad = gradient_buffer_.slice0(at, at + n).reshape(p.value->shape());
    at += n;
  }
}

std::vector<Compressor::Named> Compressor::parameters() {
  std::vector<Named> out;
  if (tokens_.defined()) out.push_back({"compression_tokens", &tokens_, &tokens_grad_});
  if (ae_token_.defined()) out.push_back({"ae_token", &ae_token_, &ae_token_grad_});
  for (const auto& p : lora_.parameters()) out.push_back({p.name, p.value, p.grad});
  return out;
}

int64_t Compressor::parameter_count() {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.value->numel();
  return n;
}

std::pair<int64_t, int64_t> Compressor::lora_gradient_range(int layer) {
  const auto* base = static_cast<const char*>(gradient_buffer_.raw());
  int64_t begin = gradient_buffer_.numel(), end = begin, count = 0;
  for (int t = 0; t < kLoraTargetCount; ++t) {
    const LoraAdapter* adapter = lora_.find(layer, static_cast<LoraTarget>(t));
    if (adapter == nullptr) continue;
    for (const Tensor* g : {&adapter->grad_a, &adapter->grad_b}) {
      const int64_t at = (static_cast<const char*>(g->raw()) - base) / static_cast<int64_t>(sizeof(float));
      begin = count == 0 ? at : std::min(begin, at);
      end = count == 0 ? at + g->numel() : std::max(end, at + g->numel());
      count += g->numel();
    }
  }
  CHECK_EQ(end - begin, count) << "layer " << layer << "'s LoRA gradients are not contiguous in the buffer";
  return {begin, end};
}

void Compressor::zero_grad() {
  if (device_ops_)
    device_ops_->zero(gradient_buffer_);
  else
    std::fill(gradient_buffer_.data<float>(), gradient_buffer_.data<float>() + gradient_buffer_.numel(), 0.0f);
}

std::vector<Tensor> Compressor::values() {
  std::vector<Tensor> out;
  for (const auto& p : parameters()) out.push_back(*p.value);
  return out;
}

std::vector<Tensor> Compressor::gradients() {
  std::vector<Tensor> out;
  for (const auto& p : parameters()) out.push_back(*p.grad);
  return out;
}

void Compressor::place_on(Ops& ops) {
  if (computes_in_host_memory(ops) || device_ops_ == &ops) return;
  CHECK(device_ops_ == nullptr) << "a compressor is placed on one backend";
  for (auto& p : parameters()) *p.value = ops.upload(*p.value);
  bind_gradients_to(ops.zeros({parameter_count()}));
  device_ops_ = &ops;
}

std::vector<std::pair<std::string, Tensor>> Compressor::host_values() {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& p : parameters())
    out.emplace_back(p.name, device_ops_ ? device_ops_->download(*p.value) : *p.value);
  return out;
}

namespace {

// Index tensors (ids, positions, masks, targets) are built on the host, then uploaded.
Tensor ints(Shape shape) { return Tensor::zeros(std::move(shape), DType::I32); }

// The trainable tensors where the backend computes. On the CPU backend, and for a
// compressor placed on the device, they are the compressor's own tensors (upload shares
// storage); for host tensors on a device backend, copies made for this call, whose
// gradients are written back into the compressor afterwards.
struct BackendParameters {
  const CompressorSettings* settings = nullptr;
  LoraWeights lora;  // a copy of the compressor's adapters, rebound to backend tensors
  Tensor tokens, tokens_grad, ae_token, ae_token_grad;
};

BackendParameters parameters_on_backend(Compressor& comp, Ops& ops, bool with_gradients) {
  BackendParameters p;
  p.settings = &comp.settings();
  p.lora = lora_on_backend(comp.lora(), ops, with_gradients);
  if (comp.tokens().defined()) p.tokens = ops.upload(comp.tokens());
  if (comp.ae_token().defined()) p.ae_token = ops.upload(comp.ae_token());
  if (with_gradients) {
    // As lora_on_backend: the compressor's own buffers where they are where ops computes
    // (the CPU backend, or a compressor placed on the device), else zeros on the device.
    const bool host_memory = computes_in_host_memory(ops);
    auto gradient = [&](Tensor& own) {
      return host_memory || !own.on_host() ? ops.upload(own) : ops.zeros(own.shape());
    };
    if (comp.tokens().defined()) p.tokens_grad = gradient(comp.tokens_grad());
    if (comp.ae_token().defined()) p.ae_token_grad = gradient(comp.ae_token_grad());
  }
  return p;
}

// host += the backend's gradient of this call (nothing to do on the CPU backend, where
// the backend accumulated into the host's storage itself).
void add_to_host(Ops& ops, const Tensor& backend, Tensor& host) {
  if (backend.raw() == host.raw()) return;
  const Tensor step = ops.download(backend);
  const float* add = step.data<float>();
  float* sum = host.data<float>();
  const int64_t n = host.numel();
  CHECK_EQ(step.numel(), n);
#pragma omp parallel for schedule(static) if (n >= (int64_t{1} << 16))
  for (int64_t i = 0; i < n; ++i) sum[i] += add[i];
}

// The backend's gradients of this call added into the compressor's.
void write_back_gradients(BackendParameters& p, Compressor& comp, Ops& ops) {
  if (p.tokens_grad.defined()) add_to_host(ops, p.tokens_grad, comp.tokens_grad());
  if (p.ae_token_grad.defined()) add_to_host(ops, p.ae_token_grad, comp.ae_token_grad());
  const std::vector<LoraWeights::Named> backend = p.lora.parameters(), host = comp.lora().parameters();
  CHECK_EQ(backend.size(), host.size());
  for (size_t i = 0; i < host.size(); ++i) add_to_host(ops, *backend[i].grad, *host[i].grad);
}

// Everything the encoder pass leaves for the decoder and for its own backward pass.
struct EncoderPass {
  int64_t b = 0, l = 0, n = 0, t = 0;  // t = l + n
  Tensor positions, key_valid;          // I32 [B, t]
  Tensor last_positions;                // I32 [B, n]: the compression tokens'
  // Per layer [B, t, kv_heads, head_dim]; K/V mode's last layer writes only the
  // compression tokens' entries [l, t) (the rest stay zeros: nothing reads them).
  std::vector<Tensor> keys, values;
  LayerMemory memory_for_backward;
  int layers = 0;
  bool kv_mode = false;
  Tensor final_input;  // embedding mode: residual stream before the final norm [B*n, hidden]
  Tensor memory;       // embedding mode: final hidden states at the compression positions [B, N, hidden]
  std::vector<LayerLora::SampleRows> dropout_rows;  // per sample: its real rows, its key (may be empty)
};

// LoRA dropout is active only when training (a backward pass follows); masks differ per
// (step and micro-batch stream, layer). `rows`: each sample's real rows and key (empty:
// one mask over the whole input). Whichever pass carries the LoRA (the encoder, or the
// decoder in mode none) draws from the same streams: only one of them has adapters.
LayerLora lora_for(BackendParameters& p, const StepOptions& o, int layer,
                   const std::vector<LayerLora::SampleRows>& rows) {
  const float dropout = o.backward ? static_cast<float>(p.settings->lora.dropout) : 0.0f;
  return LayerLora{&p.lora, dropout, o.dropout_seed, o.dropout_stream * 4096 + static_cast<uint64_t>(layer), rows};
}

// How an encoder layer runs. Past the encoder only the compression tokens' rows are
// read (their keys and values at every layer in K/V mode, their final hidden states in
// embedding mode), and the other rows of a layer reach later layers only through that
// layer's keys and values. So the layer whose output feeds only the compression tokens'
// keys and values (K/V mode) or hidden states (embedding mode) computes its output for
// those rows alone (its queries, attention, o_proj and MLP: a 480-token text's 480 rows
// fewer), and K/V mode's last layer then takes only those rows, for their keys and
// values; the values are those of every row computed, as nothing read depends on the
// rest.
struct EncoderCall {
  LayerExtent extent;
  bool on_last_rows = false;  // the input holds each sample's N compression-token rows alone
  LayerStore store;
  const Tensor* positions = nullptr;
};

EncoderCall encoder_call(EncoderPass& e, int layer) {
  EncoderCall call;
  const bool last = layer == e.layers - 1, before_last = layer == e.layers - 2;
  if (e.kv_mode && last) {
    call.extent = LayerExtent::keys_values_only();
    call.on_last_rows = true;
  } else if (e.kv_mode ? before_last : last) {
    call.extent = LayerExtent::last_rows(e.n);
  }
  call.store = call.on_last_rows ? LayerStore{&e.keys[layer], &e.values[layer], &e.key_valid, e.l, e.t}
                                 : LayerStore{&e.keys[layer], &e.values[layer], &e.key_valid, 0, e.t};
  call.positions = call.on_last_rows ? &e.last_positions : &e.positions;
  return call;
}

LayerLora encoder_lora(BackendParameters& comp, const StepOptions& options, int layer, const EncoderPass& e,
                       const EncoderCall& call) {
  const LayerLora lora = lora_for(comp, options, layer, e.dropout_rows);
  return call.on_last_rows ? lora_of_last_rows(lora, e.n, e.t) : lora;
}

// The encoder input is left-padded so the N compression tokens sit at the same rows
// [L, L + N) of every sample: row b holds its text at [L - len_b, L).
EncoderPass run_encoder(const LlamaModel& model, BackendParameters& comp, const Tensor& text,
                        const std::vector<int64_t>& lengths, const std::vector<uint64_t>& sample_keys,
                        const StepOptions& options, bool save) {
  const LlamaConfig& c = model.config();
  Ops& ops = model.ops();
  CHECK(comp.settings->mode != CompressorMode::kNone) << "mode none has no encoder";
  EncoderPass e;
  e.b = text.dim(0);
  e.l = text.dim(1);
  e.n = comp.settings->num_tokens;
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
  if (!sample_keys.empty()) {
    CHECK_EQ(static_cast<int64_t>(sample_keys.size()), e.b);
    for (int64_t r = 0; r < e.b; ++r) {  // the text's real tokens and the N compression tokens
      const int64_t pad = e.l - lengths[r];
      e.dropout_rows.push_back({r * e.t + pad, e.t - pad, sample_keys[r]});
    }
  }
  e.last_positions = ints({e.b, e.n});
  for (int64_t r = 0; r < e.b; ++r)
    for (int64_t i = 0; i < e.n; ++i)
      e.last_positions.data<int32_t>()[r * e.n + i] = e.positions.data<int32_t>()[r * e.t + e.l + i];
  e.positions = ops.upload(e.positions);
  e.last_positions = ops.upload(e.last_positions);
  e.key_valid = ops.upload(e.key_valid);
  Tensor x = ops.empty({e.b * e.t, c.hidden_size});
  ops.embedding(model.weights().embed, ops.upload(ids), x);
  Tensor rows = x.reshape({e.b, e.t, c.hidden_size});
  for (int64_t r = 0; r < e.b; ++r) {
    Tensor row = rows.slice0(r, r + 1);
    ops.write_rows(comp.tokens.reshape({1, e.n, c.hidden_size}), row, e.l);
  }

  e.kv_mode = comp.settings->mode == CompressorMode::kKeyValue;
  e.layers = static_cast<int>(c.num_hidden_layers);
  if (save) e.memory_for_backward = LayerMemory(e.layers, options.activations);  // else it keeps nothing
  for (int layer = 0; layer < e.layers; ++layer) {
    e.keys.push_back(ops.zeros({e.b, e.t, c.num_key_value_heads, c.head_dim}));
    e.values.push_back(ops.zeros({e.b, e.t, c.num_key_value_heads, c.head_dim}));
    const EncoderCall call = encoder_call(e, layer);
    if (call.on_last_rows && x.dim(0) != e.b * e.n) {  // a one-layer K/V encoder: its input's last rows
      Tensor last = ops.empty({e.b, e.n, c.hidden_size});
      ops.read_rows(x.reshape({e.b, e.t, c.hidden_size}), e.l, last);
      x = last.reshape({e.b * e.n, c.hidden_size});
    }
    e.memory_for_backward.forward(model, layer, x, *call.positions, call.store,
                                  encoder_lora(comp, options, layer, e, call), call.extent);
  }
  if (!e.kv_mode) {
    e.final_input = x;  // the compression tokens' rows [B*N, hidden]; no later layer updates it
    e.memory = ops.empty({e.b, e.n, c.hidden_size});
    Tensor memory_rows = e.memory.reshape({e.b * e.n, c.hidden_size});
    ops.rmsnorm(x, model.weights().final_norm, static_cast<float>(c.rms_norm_eps), memory_rows);
    if (comp.settings->memory_scale != 1.0f) ops.scale(e.memory, comp.settings->memory_scale);
  }
  return e;
}

// The decoder's view: a K/V prefix of N entries (K/V mode), N memory embeddings ahead
// of the tokens (embedding mode), or the tokens alone with LoRA on (mode none: they hold
// the uncompressed context themselves).
struct DecoderPass {
  int64_t b = 0, t = 0, prefix = 0, rows = 0;  // rows: input positions per sample
  Tensor positions, key_valid, targets;       // I32 [B, rows], [B, the stores' capacity], [B*rows]
  Tensor host_targets;                        // targets, on the host (for the loss sums)
  std::vector<Tensor> keys, values;
  LayerMemory memory_for_backward;
  Tensor final_input;  // [B*rows, hidden]
  Tensor normed;       // rmsnorm(final_input): the LM head's input
  bool lora = false;   // mode none: the decoder carries the adapters
  std::vector<LayerLora::SampleRows> dropout_rows;  // mode none: per sample its real rows, its key
};

// The decoder's LoRA for one layer: none, except in mode none.
LayerLora decoder_lora(BackendParameters& comp, const StepOptions& options, int layer, const DecoderPass& d) {
  return d.lora ? lora_for(comp, options, layer, d.dropout_rows) : LayerLora{};
}

}  // namespace

int64_t decoder_store_capacity(int64_t prefix, int64_t entries) {
  return prefix > 0 ? (entries + 7) / 8 * 8 : entries;
}

namespace {

// `e` is the encoder pass, null in mode none (nothing was encoded).
DecoderPass run_decoder(const LlamaModel& model, BackendParameters& comp, const EncoderPass* e,
                        const CompressorBatch& batch, const StepOptions& options, bool use_ae_token, bool save) {
  const LlamaConfig& c = model.config();
  Ops& ops = model.ops();
  const CompressorMode mode = comp.settings->mode;
  const bool kv_mode = mode == CompressorMode::kKeyValue, embedding_mode = mode == CompressorMode::kEmbedding;
  CHECK_EQ(e == nullptr, mode == CompressorMode::kNone);
  DecoderPass d;
  d.b = batch.decoder_tokens.dim(0);
  d.t = batch.decoder_tokens.dim(1);
  if (e) CHECK_EQ(d.b, e->b);
  const int64_t n = e ? e->n : 0;
  // K/V mode: the prefix lives in the store; embedding mode: it is part of the input;
  // mode none: there is none.
  d.prefix = kv_mode ? n : 0;
  d.rows = embedding_mode ? n + d.t : d.t;
  const int64_t store_size = d.prefix + d.rows, lead = d.rows - d.t;  // lead: memory rows in the input
  const int64_t store_capacity = decoder_store_capacity(d.prefix, store_size);
  d.positions = ints({d.b, d.rows});
  d.key_valid = ints({d.b, store_capacity});
  d.targets = Tensor::empty({d.b * d.rows}, DType::I32);
  for (int64_t r = 0; r < d.b; ++r) {
    // Embedding mode continues the memory's positions and mode none starts at 0; K/V
    // mode starts at N (reference) or right after the compressed keys at len + N.
    const int64_t first = !kv_mode ? 0
                          : comp.settings->decoder_positions == DecoderPositions::kReference ? n
                                                                                              : batch.text_lengths[r] + n;
    for (int64_t i = 0; i < d.rows; ++i) d.positions.data<int32_t>()[r * d.rows + i] = static_cast<int32_t>(first + i);
    for (int64_t i = 0; i < store_size; ++i) {
      const int64_t token = i - d.prefix - lead;  // index into the decoder tokens, < 0 for the prefix/memory
      d.key_valid.data<int32_t>()[r * store_capacity + i] = token < batch.decoder_lengths[r] ? 1 : 0;
    }
    for (int64_t i = 0; i < d.rows; ++i) {
      const int64_t token = i - lead;
      d.targets.data<int32_t>()[r * d.rows + i] = token < 0 ? -1 : batch.targets.data<int32_t>()[r * d.t + token];
    }
  }
  if (mode == CompressorMode::kNone) {
    d.lora = true;
    if (!batch.sample_keys.empty()) {
      CHECK_EQ(static_cast<int64_t>(batch.sample_keys.size()), d.b);
      for (int64_t r = 0; r < d.b; ++r)
        d.dropout_rows.push_back({r * d.rows, batch.decoder_lengths[r], batch.sample_keys[r]});
    }
  }

  d.host_targets = d.targets;
  d.positions = ops.upload(d.positions);
  d.key_valid = ops.upload(d.key_valid);
  d.targets = ops.upload(d.targets);

  Tensor x = ops.empty({d.b * d.rows, c.hidden_size});
  Tensor token_x = embedding_mode ? ops.empty({d.b * d.t, c.hidden_size}) : x;
  ops.embedding(model.weights().embed, ops.upload(batch.decoder_tokens), token_x);
  Tensor token_rows = token_x.reshape({d.b, d.t, c.hidden_size});
  if (use_ae_token)
    for (int64_t r = 0; r < d.b; ++r) {
      Tensor row = token_rows.slice0(r, r + 1);
      ops.write_rows(comp.ae_token.reshape({1, 1, c.hidden_size}), row, 0);
    }
  if (embedding_mode) {
    Tensor rows = x.reshape({d.b, d.rows, c.hidden_size});
    ops.write_rows(e->memory, rows, 0);
    ops.write_rows(token_rows, rows, n);
  }

  if (save) d.memory_for_backward = LayerMemory(static_cast<int>(c.num_hidden_layers), options.activations);
  for (int layer = 0; layer < c.num_hidden_layers; ++layer) {
    d.keys.push_back(ops.zeros({d.b, store_capacity, c.num_key_value_heads, c.head_dim}));
    d.values.push_back(ops.zeros({d.b, store_capacity, c.num_key_value_heads, c.head_dim}));
    if (kv_mode) {
      Tensor k = ops.empty({d.b, n, c.num_key_value_heads, c.head_dim});
      Tensor v = ops.empty(k.shape());
      ops.read_rows(e->keys[layer], e->l, k);
      ops.read_rows(e->values[layer], e->l, v);
      ops.write_rows(k, d.keys[layer], 0);
      ops.write_rows(v, d.values[layer], 0);
    }
    const LayerStore store{&d.keys[layer], &d.values[layer], &d.key_valid, d.prefix, store_size};
    d.memory_for_backward.forward(model, layer, x, d.positions, store, decoder_lora(comp, options, layer, d),
                                  LayerExtent::full());
  }
  d.final_input = x;
  d.normed = ops.empty(x.shape());
  ops.rmsnorm(x, model.weights().final_norm, static_cast<float>(c.rms_norm_eps), d.normed);
  return d;
}

}  // namespace

namespace {

// Sums the per-row losses over the rows with a target, and separately over the
// end-of-text targets.
// Adds the teacher-forced accuracy counts of `logits` (on the backend; one row of V per
// target) to `loss`.
// Validation only: a device backend copies the logits to the host for it.
void count_correct(Ops& ops, const Tensor& logits, const Tensor& host_targets, int32_t end_id, CompressorLoss& loss) {
  const Tensor host = ops.download(logits);  // the same tensor on the CPU backend
  CHECK(host.dtype() == DType::F32);
  const int64_t vocab = host.dim(host.ndim() - 1);  // [M, V] or [B, T, V]
  CHECK_EQ(host.numel(), host_targets.numel() * vocab);
  const int32_t* targets = host_targets.data<int32_t>();
  for (int64_t i = 0; i < host_targets.numel(); ++i) {
    if (targets[i] < 0) continue;
    const float* row = host.data<float>() + i * vocab;
    const bool hit = std::max_element(row, row + vocab) - row == targets[i];
    loss.correct += hit;
    loss.end_correct += hit && targets[i] == end_id;
  }
}

CompressorLoss sum_losses(const Tensor& host_losses, const Tensor& host_targets, int32_t end_id) {
  CompressorLoss loss;
  const float* losses = host_losses.data<float>();
  const int32_t* targets = host_targets.data<int32_t>();
  for (int64_t i = 0; i < host_targets.numel(); ++i) {
    if (targets[i] < 0) continue;
    loss.sum += losses[i];
    ++loss.targets;
    if (targets[i] == end_id) {
      loss.end_sum += losses[i];
      ++loss.end_targets;
    }
  }
  return loss;
}

Tensor filled(int64_t n, float value) {
  Tensor t = Tensor::empty({n});
  std::fill(t.data<float>(), t.data<float>() + n, value);
  return t;
}

// The LM head and the loss over the rows of `normed` (the head's input, [M, hidden] on
// the backend) against `targets` (I32 [M], on the backend and on the host), a chunk of
// rows at a time, so the logits and their gradients exist for one chunk only. Returns
// the summed losses (and, without backward, the accuracy counts); with `dnormed` also the
// gradient at the head's input.
CompressorLoss loss_in_chunks(const LlamaModel& model, const Tensor& normed, const Tensor& targets,
                              const Tensor& host_targets, float token_weight, int32_t end_id, int64_t rows_per_chunk,
                              Tensor* dnormed) {
  Ops& ops = model.ops();
  const int64_t m = normed.dim(0), vocab = model.config().vocab_size;
  CHECK_EQ(host_targets.numel(), m);
  const int64_t chunk = rows_per_chunk > 0 ? rows_per_chunk : std::max<int64_t>(1, kLossChunkElements / vocab);
  Tensor losses = ops.empty({m});
  const Tensor weights = ops.upload(filled(m, token_weight));
  CompressorLoss counts;
  for (int64_t first = 0; first < m; first += chunk) {
    const int64_t end = std::min(m, first + chunk);
    // The gradients only feed the LM head's backward product: in its dtype.
    Tensor logits = ops.empty({end - first, vocab}), dlogits = ops.empty({end - first, vocab}, ops.product_dtype());
    ops.linear(normed.slice0(first, end), model.weights().lm_head, logits);
    Tensor chunk_losses = losses.slice0(first, end);
    ops.cross_entropy(logits, targets.slice0(first, end), weights.slice0(first, end), chunk_losses, dlogits);
    if (dnormed) {
      Tensor rows = dnormed->slice0(first, end);
      ops.linear_backward_input(dlogits, model.weights().lm_head, rows, false);
    } else {
      count_correct(ops, logits, host_targets.slice0(first, end), end_id, counts);
    }
  }
  CompressorLoss loss = sum_losses(ops.download(losses), host_targets, end_id);
  loss.correct = counts.correct;
  loss.end_correct = counts.end_correct;
  return loss;
}

CompressorLoss decoder_loss_in_chunks(const LlamaModel& model, const DecoderPass& d, const StepOptions& options,
                                      Tensor* dnormed) {
  return loss_in_chunks(model, d.normed, d.targets, d.host_targets, options.token_weight, options.end_id,
                        options.loss_rows_per_chunk, dnormed);
}

}  // namespace

CompressorLoss compressor_step(const LlamaModel& model, Compressor& compressor, const CompressorBatch& batch,
                               const StepOptions& options) {
  const LlamaConfig& c = model.config();
  Ops& ops = model.ops();
  BackendParameters comp = parameters_on_backend(compressor, ops, options.backward);
  const bool kv_mode = comp.settings->mode == CompressorMode::kKeyValue;
  const bool none_mode = comp.settings->mode == CompressorMode::kNone;
  const bool use_ae_token = comp.settings->mode == CompressorMode::kEmbedding && options.ae_token;
  EncoderPass e;
  if (!none_mode)
    e = run_encoder(model, comp, batch.text, batch.text_lengths, batch.sample_keys, options, options.backward);
  DecoderPass d = run_decoder(model, comp, none_mode ? nullptr : &e, batch, options, use_ae_token, options.backward);

  const int64_t m = d.b * d.rows;
  if (!options.backward) return decoder_loss_in_chunks(model, d, options, nullptr);
  Tensor dnormed = ops.empty({m, c.hidden_size});
  const CompressorLoss loss = decoder_loss_in_chunks(model, d, options, &dnormed);

  // Who is told when a layer's LoRA gradients are written: as backward passes each layer
  // when it accumulates into the compressor's own buffers, else all at the end, after
  // the write-back.
  const bool hooked = static_cast<bool>(options.lora_gradients_ready);
  const bool direct = hooked && (compressor.on_device() || computes_in_host_memory(ops));
  const bool deferred = hooked && !direct;
  auto report_every_layer = [&] {
    for (int layer = static_cast<int>(c.num_hidden_layers) - 1; layer >= 0; --layer) options.lora_gradients_ready(layer);
  };

  // Decoder backward: activation gradients only, down to the prefix (or memory); in mode
  // none, into the decoder's LoRA, and that is the whole step.
  Tensor dx = ops.empty({m, c.hidden_size});
  ops.rmsnorm_backward(dnormed, d.final_input, model.weights().final_norm, static_cast<float>(c.rms_norm_eps), dx,
                       false);
  std::vector<Tensor> prefix_dk(c.num_hidden_layers), prefix_dv(c.num_hidden_layers);
  for (int layer = static_cast<int>(c.num_hidden_layers) - 1; layer >= 0; --layer) {
    Tensor dk = ops.zeros(d.keys[layer].shape()), dv = ops.zeros(d.values[layer].shape());
    const LayerStore store{&d.keys[layer], &d.values[layer], &d.key_valid, d.prefix, d.prefix + d.rows};
    d.memory_for_backward.backward(model, layer, dx, d.positions, store, dk, dv, decoder_lora(comp, options, layer, d),
                                   LayerExtent::full());
    if (none_mode && direct) options.lora_gradients_ready(layer);
    if (kv_mode) {
      prefix_dk[layer] = ops.empty({d.b, e.n, c.num_key_value_heads, c.head_dim});
      prefix_dv[layer] = ops.empty(prefix_dk[layer].shape());
      ops.read_rows(dk, 0, prefix_dk[layer]);
      ops.read_rows(dv, 0, prefix_dv[layer]);
    }
  }
  if (none_mode) {
    write_back_gradients(comp, compressor, ops);
    if (deferred) report_every_layer();
    return loss;
  }
  Tensor dx_rows = dx.reshape({d.b, d.rows, c.hidden_size});
  if (use_ae_token) {  // the AE token sits at memory row N of every sample
    Tensor ae_rows = ops.empty({d.b, 1, c.hidden_size});
    ops.read_rows(dx_rows, e.n, ae_rows);
    for (int64_t r = 0; r < d.b; ++r)
      ops.add_inplace(comp.ae_token_grad, ae_rows.slice0(r, r + 1).reshape({1, c.hidden_size}));
  }

  // Encoder backward: from the prefix keys/values (K/V mode) or the memory rows through
  // the final norm (embedding mode), into LoRA and the compression tokens.
  // The gradient at the encoder's output, the compression tokens' rows [B*N, hidden]:
  // none in K/V mode (its last layer is read only through its keys and values).
  Tensor dx_enc = ops.zeros({e.b * e.n, c.hidden_size});
  if (!kv_mode) {
    Tensor dmemory = ops.empty({d.b, e.n, c.hidden_size});
    ops.read_rows(dx_rows, 0, dmemory);
    if (comp.settings->memory_scale != 1.0f) ops.scale(dmemory, comp.settings->memory_scale);
    ops.rmsnorm_backward(dmemory.reshape({e.b * e.n, c.hidden_size}), e.final_input, model.weights().final_norm,
                         static_cast<float>(c.rms_norm_eps), dx_enc, false);
  }
  for (int layer = e.layers - 1; layer >= 0; --layer) {
    Tensor dk = ops.zeros(e.keys[layer].shape()), dv = ops.zeros(e.values[layer].shape());
    if (kv_mode) {
      ops.write_rows(prefix_dk[layer], dk, e.l);
      ops.write_rows(prefix_dv[layer], dv, e.l);
    }
    const EncoderCall call = encoder_call(e, layer);
    e.memory_for_backward.backward(model, layer, dx_enc, *call.positions, call.store, dk, dv,
                                   encoder_lora(comp, options, layer, e, call), call.extent);
    if (direct) options.lora_gradients_ready(layer);
  }
  // The gradient at the encoder's input: every row's, or (a one-layer K/V encoder) the
  // compression tokens' alone.
  Tensor dtokens;
  if (dx_enc.dim(0) == e.b * e.n) {
    dtokens = dx_enc.reshape({e.b, e.n, c.hidden_size});
  } else {
    dtokens = ops.empty({e.b, e.n, c.hidden_size});
    ops.read_rows(dx_enc.reshape({e.b, e.t, c.hidden_size}), e.l, dtokens);
  }
  for (int64_t r = 0; r < e.b; ++r)
    ops.add_inplace(comp.tokens_grad, dtokens.slice0(r, r + 1).reshape(comp.tokens_grad.shape()));
  write_back_gradients(comp, compressor, ops);
  if (deferred) report_every_layer();
  return loss;
}

CompressorLoss decoder_only_loss(const LlamaModel& model, const CompressorBatch& batch, int32_t end_id) {
  Ops& ops = model.ops();
  const int64_t b = batch.decoder_tokens.dim(0), t = batch.decoder_tokens.dim(1);
  Tensor positions = ints({b, t}), mask = ints({b, t});
  for (int64_t r = 0; r < b; ++r)
    for (int64_t i = 0; i < t; ++i) {
      positions.data<int32_t>()[r * t + i] = static_cast<int32_t>(i);
      mask.data<int32_t>()[r * t + i] = i < batch.decoder_lengths[r] ? 1 : 0;
    }
  KvCache cache(model.config(), b, t, ops);
  const Tensor normed = model.final_hidden_on_backend(batch.decoder_tokens, positions, mask, cache);
  const Tensor targets = batch.targets.reshape({b * t});
  return loss_in_chunks(model, normed, ops.upload(targets), targets, 1.0f, end_id, 0, nullptr);
}

CompressedPrompt compress(const LlamaModel& model, Compressor& compressor, const Tensor& text,
                          const std::vector<int64_t>& text_lengths) {
  const LlamaConfig& c = model.config();
  Ops& ops = model.ops();
  if (compressor.settings().mode == CompressorMode::kNone)
    throw_input_error("a compressor of mode none has nothing to compress: it was trained with the context itself in ",
                      "the prompt (compressor.mode: none)");
  BackendParameters comp = parameters_on_backend(compressor, ops, /*with_gradients=*/false);
  StepOptions options;
  options.backward = false;  // no LoRA dropout, nothing saved
  EncoderPass e = run_encoder(model, comp, text, text_lengths, {}, options, false);
  CompressedPrompt p;
  p.mode = comp.settings->mode;
  p.text_lengths = text_lengths;
  if (p.mode == CompressorMode::kEmbedding) {
    p.embeddings = ops.download(e.memory);
    return p;
  }
  for (int layer = 0; layer < e.layers; ++layer) {
    Tensor k = ops.empty({e.b, e.n, c.num_key_value_heads, c.head_dim}), v = ops.empty(k.shape());
    ops.read_rows(e.keys[layer], e.l, k);
    ops.read_rows(e.values[layer], e.l, v);
    p.keys.push_back(ops.download(k));
    p.values.push_back(ops.download(v));
  }
  return p;
}

}  // namespace xcomp
