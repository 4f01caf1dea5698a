// The shape and numerics of a LLaMA-family decoder, as Hugging Face's config.json
// (LlamaForCausalLM) describes it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xcomp {

struct RopeScaling {
  // "llama3" (LLaMA-3.1) is the only scaling type supported; empty means none.
  std::string type;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct LlamaConfig {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_attention_heads unless given
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  int32_t bos_token_id = 1;
  int32_t eos_token_id = 2;
  // Extra ids that also end generation (LLaMA-3's <|eot_id|>, a chat model's end of turn).
  std::vector<int32_t> extra_eos_token_ids;
  // Where the model was read from, for error messages.
  std::string source;

  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
};

// Checks the internal consistency of a config (positive sizes, heads dividing evenly,
// head_dim even); throws InputError naming `config.source` and the key.
void validate_llama_config(const LlamaConfig& config);

// RoPE inverse frequencies, [head_dim / 2], including llama3 scaling, computed the way
// Hugging Face's rotary embedding computes them.
std::vector<double> rope_inverse_frequencies(const LlamaConfig& config);

}  // namespace xcomp
