#include "trainer/step_flops.h"

#include <algorithm>

#include "model/lora.h"

namespace xcomp {

namespace {

// Multiply-adds of the frozen K and V projections, the rest of attention, and the MLP of
// one layer for one token.
struct LayerWeights {
  double kv, q_and_o, mlp;
  double total() const { return kv + q_and_o + mlp; }
};

LayerWeights layer_weights(const LlamaConfig& c) {
  const double h = static_cast<double>(c.hidden_size);
  return {2 * h * static_cast<double>(c.kv_dim()), 2 * h * static_cast<double>(c.q_dim()),
          3 * h * static_cast<double>(c.intermediate_size)};
}

// Forward and backward: backward is twice the forward (dq and dk from the score
// gradient, dv and the score gradient).
double attention_flops(const LlamaConfig& c, int64_t batch, int64_t queries, int64_t prefix) {
  return 3 * attention_forward_flops(c, batch, queries, prefix);
}

// Mode none: the decoder alone with LoRA over its decoder_len input rows (the context is
// among them); no encoder.
StepFlops full_context_step_flops(const LlamaConfig& c, const CompressorSettings& s, const StepShape& shape) {
  const double rows = static_cast<double>(shape.batch * shape.decoder_len);
  const double layers = static_cast<double>(c.num_hidden_layers);
  const double fwd_bwd = 2 + 2;
  StepFlops f;
  f.decoder_matmul = fwd_bwd * rows * (layers * layer_weights(c).total() +
                                       static_cast<double>(c.hidden_size) * static_cast<double>(c.vocab_size));
  for (LoraTarget target : s.lora.targets) {
    const Shape out_in = lora_projection_shape(c, target);
    f.lora += 3 * 2.0 * static_cast<double>(s.lora.r) * static_cast<double>(out_in[0] + out_in[1]) * rows * layers;
  }
  f.attention = attention_flops(c, shape.batch, shape.decoder_len, 0) * layers;
  return f;
}

}  // namespace

StepFlops compressor_step_flops(const LlamaConfig& c, const CompressorSettings& s, const StepShape& shape) {
  if (s.mode == CompressorMode::kNone) return full_context_step_flops(c, s, shape);
  const bool kv_mode = s.mode == CompressorMode::kKeyValue;
  const int64_t layers = c.num_hidden_layers;
  // The encoder as the step runs it (model/compressor.cc, encoder_call): every row of
  // every layer, except that the layer whose output only the compression tokens' keys
  // and values (K/V mode: the one before the last) or hidden states (embedding mode: the
  // last) read computes queries, attention, o_proj and the MLP for the N rows alone, and
  // K/V mode's last layer only their keys and values.
  const int64_t last_rows_layer = kv_mode ? layers - 2 : layers - 1;  // -1: none (a one-layer K/V encoder)
  const int64_t full_encoder_layers = std::max<int64_t>(last_rows_layer, 0);
  const bool has_last_rows_layer = last_rows_layer >= 0;
  const double enc_tokens = static_cast<double>(shape.batch * (shape.text_len + shape.num_tokens));
  const double enc_memory_rows = static_cast<double>(shape.batch * shape.num_tokens);
  const int64_t dec_rows_per_sample = shape.decoder_len + (kv_mode ? 0 : shape.num_tokens);
  const double dec_rows = static_cast<double>(shape.batch * dec_rows_per_sample);
  const double dec_targets = static_cast<double>(shape.batch * shape.decoder_len);
  const LayerWeights w = layer_weights(c);
  const double fwd_bwd = 2 + 2;  // FLOPs per multiply-add: forward + activation backward

  StepFlops f;
  double encoder_weights = static_cast<double>(full_encoder_layers) * enc_tokens * w.total();
  if (has_last_rows_layer) encoder_weights += enc_tokens * w.kv + enc_memory_rows * (w.q_and_o + w.mlp);
  if (kv_mode) encoder_weights += enc_memory_rows * w.kv;
  f.encoder_matmul = fwd_bwd * encoder_weights;
  f.decoder_matmul = fwd_bwd * (dec_rows * static_cast<double>(layers) * w.total() +
                                dec_targets * static_cast<double>(c.hidden_size) * static_cast<double>(c.vocab_size));

  // LoRA on the encoder only: x A^T and u B^T forward, their input and weight gradients,
  // over the rows each projection reads.
  for (LoraTarget target : s.lora.targets) {
    const Shape out_in = lora_projection_shape(c, target);
    const double per_token = 2.0 * static_cast<double>(s.lora.r) * static_cast<double>(out_in[0] + out_in[1]);
    const bool key_value = target == LoraTarget::kK || target == LoraTarget::kV;
    double rows = static_cast<double>(full_encoder_layers) * enc_tokens;
    if (has_last_rows_layer) rows += key_value ? enc_tokens : enc_memory_rows;
    if (kv_mode && key_value) rows += enc_memory_rows;
    f.lora += 3 * per_token * rows;
  }

  const int64_t enc_len = shape.text_len + shape.num_tokens;
  f.attention = attention_flops(c, shape.batch, enc_len, 0) * static_cast<double>(full_encoder_layers);
  if (has_last_rows_layer)  // the N queries, after the text's entries
    f.attention += attention_flops(c, shape.batch, shape.num_tokens, shape.text_len);
  // The decoder's rows: in kv mode its input after the N-entry prefix, else the memory
  // rows are among them.
  f.attention += attention_flops(c, shape.batch, dec_rows_per_sample, kv_mode ? shape.num_tokens : 0) *
                 static_cast<double>(layers);
  return f;
}

double attention_forward_flops(const LlamaConfig& c, int64_t batch, int64_t queries, int64_t prefix) {
  // The keys all queries see: prefix each, and 1..queries of their own.
  const double n = static_cast<double>(queries);
  const double pairs = n * static_cast<double>(prefix) + n * (n + 1) / 2;
  // 2 FLOPs per multiply-add in the scores and 2 in the weighted sum, per head_dim element.
  return 4 * static_cast<double>(c.head_dim) * static_cast<double>(c.num_attention_heads) * pairs *
         static_cast<double>(batch);
}

}  // namespace xcomp
