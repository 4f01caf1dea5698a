#include "model/llama_config.h"

#include <cmath>

#include "model/input_error.h"

namespace xcomp {

namespace {
std::string source_of(const LlamaConfig& config) { return config.source.empty() ? "model config" : config.source; }

// Sizes are bounded so that products of two of them (a weight's element count) cannot
// overflow int64; no real model comes near the bound.
constexpr int64_t kMaxSize = int64_t{1} << 31;

void require_positive(const LlamaConfig& config, const char* key, int64_t value) {
  if (value <= 0 || value > kMaxSize) {
    throw_input_error(source_of(config), ": ", key, " must be positive and at most ", kMaxSize, ", got ", value);
  }
}

void require_positive(const LlamaConfig& config, const char* key, double value) {
  if (!(value > 0) || !std::isfinite(value)) {
    throw_input_error(source_of(config), ": ", key, " must be a positive finite number, got ", value);
  }
}

// A token id must name a vocabulary entry; -1 means the model has none.
void require_token_id(const LlamaConfig& config, const char* key, int32_t id) {
  if (id != -1 && (id < 0 || id >= config.vocab_size)) {
    throw_input_error(source_of(config), ": ", key, " ", id, " is outside the vocabulary [0, ", config.vocab_size,
                      ") (use -1 for none)");
  }
}

void validate_rope_scaling(const LlamaConfig& config) {
  const RopeScaling& s = config.rope_scaling;
  if (s.type.empty()) return;
  if (s.type != "llama3") {
    throw_input_error(source_of(config), ": rope_scaling type \"", s.type, "\" is not supported (expected llama3 or none)");
  }
  require_positive(config, "rope_scaling.factor", s.factor);
  require_positive(config, "rope_scaling.low_freq_factor", s.low_freq_factor);
  require_positive(config, "rope_scaling.high_freq_factor", s.high_freq_factor);
  require_positive(config, "rope_scaling.original_max_position_embeddings", s.original_max_position_embeddings);
  // The smooth interpolation divides by (high - low).
  if (!(s.high_freq_factor > s.low_freq_factor)) {
    throw_input_error(source_of(config), ": rope_scaling.high_freq_factor (", s.high_freq_factor,
                      ") must be greater than rope_scaling.low_freq_factor (", s.low_freq_factor, ")");
  }
}
}  // namespace

void validate_llama_config(const LlamaConfig& config) {
  require_positive(config, "hidden_size", config.hidden_size);
  require_positive(config, "intermediate_size", config.intermediate_size);
  require_positive(config, "num_hidden_layers", config.num_hidden_layers);
  require_positive(config, "num_attention_heads", config.num_attention_heads);
  require_positive(config, "num_key_value_heads", config.num_key_value_heads);
  require_positive(config, "head_dim", config.head_dim);
  require_positive(config, "vocab_size", config.vocab_size);
  require_positive(config, "max_position_embeddings", config.max_position_embeddings);
  require_positive(config, "rms_norm_eps", config.rms_norm_eps);
  require_positive(config, "rope_theta", config.rope_theta);
  if (config.num_attention_heads % config.num_key_value_heads != 0) {
    throw_input_error(source_of(config), ": num_attention_heads (", config.num_attention_heads,
                      ") must be a multiple of num_key_value_heads (", config.num_key_value_heads, ")");
  }
  if (config.head_dim % 2 != 0) {
    throw_input_error(source_of(config), ": head_dim must be even for RoPE, got ", config.head_dim);
  }
  require_token_id(config, "bos_token_id", config.bos_token_id);
  require_token_id(config, "eos_token_id", config.eos_token_id);
  for (int32_t id : config.extra_eos_token_ids) require_token_id(config, "eos_token_id", id);
  validate_rope_scaling(config);
}

namespace {
// Hugging Face computes in float32 tensors; a Python scalar meeting a float32 tensor is
// rounded to float32 first. Every step below mirrors one torch op, so each intermediate
// is rounded exactly where torch rounds it.
std::vector<float> default_inverse_frequencies(const LlamaConfig& config) {
  // inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
  const float base = static_cast<float>(config.rope_theta);
  const float dim = static_cast<float>(config.head_dim);
  std::vector<float> inv(static_cast<size_t>(config.head_dim / 2));
  for (size_t i = 0; i < inv.size(); ++i) {
    float exponent = static_cast<float>(2 * i) / dim;
    inv[i] = 1.0f / powf(base, exponent);  // float32 pow, as torch's kernel
  }
  return inv;
}

// transformers' _compute_llama3_parameters: frequencies whose wavelength exceeds the
// original context are divided by `factor`, those shorter than high_freq_wavelen are
// kept, and the band between is interpolated smoothly.
void apply_llama3_scaling(const RopeScaling& s, std::vector<float>& inv) {
  const float factor = static_cast<float>(s.factor);
  const float low = static_cast<float>(s.low_freq_factor);
  const float old_context = static_cast<float>(s.original_max_position_embeddings);
  // low_freq_wavelen / high_freq_wavelen are Python doubles, rounded when compared.
  const float low_freq_wavelen =
      static_cast<float>(static_cast<double>(s.original_max_position_embeddings) / s.low_freq_factor);
  const float high_freq_wavelen =
      static_cast<float>(static_cast<double>(s.original_max_position_embeddings) / s.high_freq_factor);
  const float band = static_cast<float>(s.high_freq_factor - s.low_freq_factor);
  const float two_pi = static_cast<float>(6.283185307179586);  // Python's 2 * math.pi
  for (float& f : inv) {
    // scalar / tensor is tensor.reciprocal() * scalar in torch.
    float wavelen = (1.0f / f) * two_pi;
    float scaled = wavelen > low_freq_wavelen ? f / factor : f;
    float smooth = ((1.0f / wavelen) * old_context - low) / band;
    float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
    bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
    f = medium ? smoothed : scaled;
  }
}
}  // namespace

std::vector<double> rope_inverse_frequencies(const LlamaConfig& config) {
  std::vector<float> inv = default_inverse_frequencies(config);
  if (config.rope_scaling.type == "llama3") apply_llama3_scaling(config.rope_scaling, inv);
  return std::vector<double>(inv.begin(), inv.end());
}

}  // namespace xcomp
