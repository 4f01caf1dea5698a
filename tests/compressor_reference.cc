#include "tests/compressor_reference.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>

namespace xcomp::test {

namespace {

Vec doubles(const Tensor& t) {
  CHECK(t.dtype() == DType::F32);
  return Vec(t.data<float>(), t.data<float>() + t.numel());
}

// Rows [begin, end) of a row-major matrix with `width` columns.
Vec rows_of(const Vec& m, int64_t width, int64_t begin, int64_t end) {
  return Vec(m.begin() + begin * width, m.begin() + end * width);
}

void append(Vec& to, const Vec& from) { to.insert(to.end(), from.begin(), from.end()); }

// The adapter of (layer, target) when `lora` adapts it; null for the decoder (lora null).
const ReferenceAdapter* adapter_of(const ReferenceCompressor* lora, int layer, LoraTarget target) {
  if (lora == nullptr) return nullptr;
  const ReferenceAdapter& a = lora->lora.at(layer)[static_cast<int>(target)];
  return a.defined() ? &a : nullptr;
}

// y [rows, out] = x W^T + scale (x A^T) B^T for x [rows, in] (LoRA dropout 0).
Vec project(const Vec& x, const Vec& w, int64_t in, int64_t out, const ReferenceCompressor* lora, int layer,
            LoraTarget target) {
  const int64_t rows = static_cast<int64_t>(x.size()) / in;
  Vec y = linear(x, w, rows, in, out);
  if (const ReferenceAdapter* a = adapter_of(lora, layer, target)) {
    const Vec delta = linear(linear(x, a->a, rows, in, lora->r), a->b, rows, lora->r, out);
    for (size_t i = 0; i < y.size(); ++i) y[i] += lora->lora_scale * delta[i];
  }
  return y;
}

// One layer over x [T, hidden] (one sample) at RoPE positions `pos`. Its T rows attend
// causally to one another and to every entry of the prefix (prefix_k/v [P, kv_heads, d],
// keys after RoPE). Returns this call's keys (after RoPE) and values in k_out / v_out.
void layer_forward(const ReferenceModel& m, int layer, Vec& x, const std::vector<int32_t>& pos, const Vec& prefix_k,
                   const Vec& prefix_v, const ReferenceCompressor* lora, Vec& k_out, Vec& v_out) {
  const LlamaConfig& c = m.config;
  const ReferenceLayer& w = m.layers[layer];
  const int64_t h = c.hidden_size, t = static_cast<int64_t>(pos.size()), d = c.head_dim;
  const int64_t heads = c.num_attention_heads, kv_heads = c.num_key_value_heads;
  const int64_t p = static_cast<int64_t>(prefix_k.size()) / (kv_heads * d);

  const Vec hn = rmsnorm(x, w.attn_norm, c.rms_norm_eps);
  const Vec q = rope(project(hn, w.wq, h, heads * d, lora, layer, LoraTarget::kQ), pos, m.inv_freq, heads, d);
  k_out = rope(project(hn, w.wk, h, kv_heads * d, lora, layer, LoraTarget::kK), pos, m.inv_freq, kv_heads, d);
  v_out = project(hn, w.wv, h, kv_heads * d, lora, layer, LoraTarget::kV);

  Vec keys = prefix_k, values = prefix_v;
  append(keys, k_out);
  append(values, v_out);
  const std::vector<int32_t> valid(p + t, 1);
  const Vec attended = attention(q, keys, values, valid, AttentionShape{1, t, heads, kv_heads, d, p + t, p + t});
  const Vec o = project(attended, w.wo, heads * d, h, lora, layer, LoraTarget::kO);
  for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];

  const Vec h2 = rmsnorm(x, w.mlp_norm, c.rms_norm_eps);
  const Vec gate = project(h2, w.w_gate, h, c.intermediate_size, lora, layer, LoraTarget::kGate);
  const Vec up = project(h2, w.w_up, h, c.intermediate_size, lora, layer, LoraTarget::kUp);
  const Vec down = project(swiglu(gate, up), w.w_down, c.intermediate_size, h, lora, layer, LoraTarget::kDown);
  for (size_t i = 0; i < x.size(); ++i) x[i] += down[i];
}

Vec embed_tokens(const ReferenceModel& m, const std::vector<int32_t>& ids) {
  Vec x;
  for (int32_t id : ids) append(x, rows_of(m.embed, m.config.hidden_size, id, id + 1));
  return x;
}

std::vector<int32_t> positions_from(int64_t first, int64_t count) {
  std::vector<int32_t> pos(count);
  for (int64_t i = 0; i < count; ++i) pos[i] = static_cast<int32_t>(first + i);
  return pos;
}

// The encoder over [text, compression tokens], LoRA on, positions 0..len+N-1.
ReferenceCompressed encode(const ReferenceModel& m, const ReferenceCompressor& comp, const std::vector<int32_t>& text) {
  const LlamaConfig& c = m.config;
  const int64_t len = static_cast<int64_t>(text.size()), kv_width = c.num_key_value_heads * c.head_dim;
  Vec x = embed_tokens(m, text);
  append(x, comp.tokens);
  const std::vector<int32_t> pos = positions_from(0, len + comp.n);
  ReferenceCompressed out;
  for (int layer = 0; layer < c.num_hidden_layers; ++layer) {
    Vec k, v;
    layer_forward(m, layer, x, pos, {}, {}, &comp, k, v);
    out.keys.push_back(rows_of(k, kv_width, len, len + comp.n));
    out.values.push_back(rows_of(v, kv_width, len, len + comp.n));
  }
  out.embeddings = rows_of(rmsnorm(x, m.final_norm, c.rms_norm_eps), c.hidden_size, len, len + comp.n);
  for (double& v : out.embeddings) v *= comp.memory_scale;
  return out;
}

// The decoder on one sample (frozen; with the LoRA in mode none, where `memory` is
// empty); returns sum(token_weight * CE) over its targets.
double decode(const ReferenceModel& m, const ReferenceCompressor& comp, const ReferenceSample& s,
              const ReferenceCompressed& memory, double token_weight) {
  const LlamaConfig& c = m.config;
  const int64_t len = static_cast<int64_t>(s.text.size()), t = static_cast<int64_t>(s.decoder_tokens.size());
  CHECK_EQ(s.targets.size(), s.decoder_tokens.size());
  Vec x;
  std::vector<int32_t> pos, targets;
  if (comp.mode == CompressorMode::kKeyValue) {
    x = embed_tokens(m, s.decoder_tokens);
    const int64_t first = comp.decoder_positions == DecoderPositions::kReference ? comp.n : len + comp.n;
    pos = positions_from(first, t);
    targets = s.targets;
  } else if (comp.mode == CompressorMode::kNone) {
    // The decoder tokens alone (they hold the context), positions 0..; s.text unused.
    x = embed_tokens(m, s.decoder_tokens);
    pos = positions_from(0, t);
    targets = s.targets;
  } else {
    // [memory, AE token, decoder tokens 1..], positions 0..; the memory rows predict nothing.
    x = memory.embeddings;
    Vec tokens = embed_tokens(m, s.decoder_tokens);
    std::copy(comp.ae_token.begin(), comp.ae_token.end(), tokens.begin());
    append(x, tokens);
    pos = positions_from(0, comp.n + t);
    targets.assign(comp.n, -1);
    targets.insert(targets.end(), s.targets.begin(), s.targets.end());
  }
  for (int layer = 0; layer < c.num_hidden_layers; ++layer) {
    Vec k, v;
    if (comp.mode == CompressorMode::kKeyValue)
      layer_forward(m, layer, x, pos, memory.keys[layer], memory.values[layer], nullptr, k, v);
    else
      layer_forward(m, layer, x, pos, {}, {}, comp.mode == CompressorMode::kNone ? &comp : nullptr, k, v);
  }
  const int64_t rows = static_cast<int64_t>(pos.size());
  const Vec logits = linear(rmsnorm(x, m.final_norm, c.rms_norm_eps), m.lm_head, rows, c.hidden_size, c.vocab_size);
  const Vec losses = cross_entropy(logits, targets, Vec(rows, token_weight));
  double total = 0;
  for (double l : losses) total += l;
  return total;
}

}  // namespace

ReferenceModel reference_model(const LlamaConfig& config, const LlamaWeights& weights) {
  CHECK(config.rope_scaling.type.empty()) << "the reference implements unscaled RoPE only";
  ReferenceModel m;
  m.config = config;
  m.embed = doubles(weights.embed);
  for (const LlamaLayerWeights& l : weights.layers)
    m.layers.push_back({doubles(l.attn_norm), doubles(l.wq), doubles(l.wk), doubles(l.wv), doubles(l.wo),
                        doubles(l.mlp_norm), doubles(l.w_gate), doubles(l.w_up), doubles(l.w_down)});
  m.final_norm = doubles(weights.final_norm);
  m.lm_head = doubles(weights.lm_head);
  for (int64_t i = 0; i < config.head_dim / 2; ++i)
    m.inv_freq.push_back(static_cast<float>(1.0 / std::pow(config.rope_theta, 2.0 * i / config.head_dim)));
  return m;
}

ReferenceCompressor reference_compressor(Compressor& compressor) {
  const CompressorSettings& s = compressor.settings();
  ReferenceCompressor r;
  r.mode = s.mode;
  r.decoder_positions = s.decoder_positions;
  r.memory_scale = s.memory_scale;
  r.n = s.num_tokens;
  r.r = s.lora.r;
  r.lora_scale = s.lora.alpha / static_cast<double>(s.lora.r);
  if (compressor.tokens().defined()) r.tokens = doubles(compressor.tokens());
  if (s.mode == CompressorMode::kEmbedding) r.ae_token = doubles(compressor.ae_token());
  LoraWeights& lora = compressor.lora();
  r.lora.resize(lora.num_layers());
  for (int layer = 0; layer < lora.num_layers(); ++layer)
    for (int t = 0; t < kLoraTargetCount; ++t)
      if (const LoraAdapter* a = lora.find(layer, static_cast<LoraTarget>(t)))
        r.lora[layer][t] = ReferenceAdapter{doubles(a->a), doubles(a->b)};
  return r;
}

CompressorBatch make_compressor_batch(const std::vector<ReferenceSample>& samples) {
  const int64_t b = static_cast<int64_t>(samples.size());
  size_t l = 0, t = 0;
  for (const ReferenceSample& s : samples) {
    l = std::max(l, s.text.size());
    t = std::max(t, s.decoder_tokens.size());
  }
  CompressorBatch batch;
  // Samples without text (mode none's) make a batch without text, as the trainer does.
  if (l > 0) batch.text = Tensor::zeros({b, static_cast<int64_t>(l)}, DType::I32);
  batch.decoder_tokens = Tensor::zeros({b, static_cast<int64_t>(t)}, DType::I32);
  batch.targets = Tensor::empty({b, static_cast<int64_t>(t)}, DType::I32);
  std::fill(batch.targets.data<int32_t>(), batch.targets.data<int32_t>() + batch.targets.numel(), -1);
  for (int64_t i = 0; i < b; ++i) {
    const ReferenceSample& s = samples[i];
    if (l > 0) std::copy(s.text.begin(), s.text.end(), batch.text.data<int32_t>() + i * l);
    std::copy(s.decoder_tokens.begin(), s.decoder_tokens.end(), batch.decoder_tokens.data<int32_t>() + i * t);
    std::copy(s.targets.begin(), s.targets.end(), batch.targets.data<int32_t>() + i * t);
    if (l > 0) batch.text_lengths.push_back(static_cast<int64_t>(s.text.size()));
    batch.decoder_lengths.push_back(static_cast<int64_t>(s.decoder_tokens.size()));
  }
  return batch;
}

ReferenceCompressed reference_compress(const ReferenceModel& model, const ReferenceCompressor& compressor,
                                       const std::vector<int32_t>& text) {
  return encode(model, compressor, text);
}

double reference_loss(const ReferenceModel& model, const ReferenceCompressor& compressor,
                      const std::vector<ReferenceSample>& samples, double token_weight) {
  double total = 0;
  for (const ReferenceSample& s : samples) {
    const bool none = compressor.mode == CompressorMode::kNone;  // nothing to encode
    total += decode(model, compressor, s, none ? ReferenceCompressed{} : encode(model, compressor, s.text), token_weight);
  }
  return total;
}

}  // namespace xcomp::test
