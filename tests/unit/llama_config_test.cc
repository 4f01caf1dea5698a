// validate_llama_config and the RoPE inverse frequencies (plain theta and LLaMA-3 scaling).
#include "model/llama_config.h"

#include <gtest/gtest.h>

#include <cmath>

#include "model/input_error.h"

namespace xcomp {
namespace {

LlamaConfig small_config() {
  LlamaConfig c;
  c.hidden_size = 64;
  c.intermediate_size = 172;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 4;
  c.head_dim = 8;
  c.vocab_size = 512;
  c.source = "test-config.json";
  return c;
}

void expect_invalid(const LlamaConfig& c, const std::string& key) {
  try {
    validate_llama_config(c);
    FAIL() << "expected InputError about " << key;
  } catch (const InputError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("test-config.json"), std::string::npos) << m;
    EXPECT_NE(m.find(key), std::string::npos) << m;
  }
}

TEST(LlamaConfig, AcceptsAConsistentConfig) { EXPECT_NO_THROW(validate_llama_config(small_config())); }

TEST(LlamaConfig, RejectsInconsistentValues) {
  LlamaConfig c = small_config();
  c.hidden_size = 0;
  expect_invalid(c, "hidden_size");
  c = small_config();
  c.num_key_value_heads = 3;
  expect_invalid(c, "num_key_value_heads");
  c = small_config();
  c.head_dim = 7;
  expect_invalid(c, "head_dim");
  c = small_config();
  c.vocab_size = -1;
  expect_invalid(c, "vocab_size");
  c = small_config();
  c.eos_token_id = 512;
  expect_invalid(c, "eos_token_id");
  c = small_config();
  c.bos_token_id = -1;  // "none" is allowed
  EXPECT_NO_THROW(validate_llama_config(c));
  c.rope_scaling.type = "yarn";
  expect_invalid(c, "rope_scaling");
  c = small_config();
  c.rms_norm_eps = 0;
  expect_invalid(c, "rms_norm_eps");
}

// Hugging Face (LlamaRotaryEmbedding / _compute_default_rope_parameters):
//   inv_freq[i] = 1 / theta ** (2i / head_dim),  i = 0 .. head_dim/2 - 1
// computed in float32, so compare with a float32-sized tolerance.
TEST(RopeInverseFrequencies, PlainTheta) {
  LlamaConfig c = small_config();
  c.head_dim = 128;
  c.rope_theta = 500000.0;
  std::vector<double> inv = rope_inverse_frequencies(c);
  ASSERT_EQ(inv.size(), 64u);
  for (size_t i = 0; i < inv.size(); ++i) {
    double expected = 1.0 / std::pow(500000.0, 2.0 * i / 128.0);
    EXPECT_NEAR(inv[i], expected, 2e-7 * expected) << i;
    EXPECT_EQ(inv[i], static_cast<double>(static_cast<float>(inv[i]))) << "not float32-rounded at " << i;
  }
  EXPECT_EQ(inv[0], 1.0);
}

// transformers' _compute_llama3_parameters (LLaMA-3.1):
//   low_freq_wavelen = original_max / low_freq_factor
//   high_freq_wavelen = original_max / high_freq_factor
//   wavelen = 2 pi / inv_freq
//   wavelen < high_freq_wavelen          -> inv_freq                (kept)
//   wavelen > low_freq_wavelen           -> inv_freq / factor       (scaled)
//   otherwise, smooth = (original_max / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
//                                        -> (1 - smooth) * inv_freq / factor + smooth * inv_freq
TEST(RopeInverseFrequencies, Llama3Scaling) {
  LlamaConfig c = small_config();
  c.head_dim = 128;
  c.rope_theta = 500000.0;
  c.rope_scaling.type = "llama3";
  c.rope_scaling.factor = 8.0;
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 8192;
  std::vector<double> inv = rope_inverse_frequencies(c);
  ASSERT_EQ(inv.size(), 64u);
  const double low_wavelen = 8192 / 1.0, high_wavelen = 8192 / 4.0;
  int kept = 0, scaled = 0, smoothed = 0;
  for (size_t i = 0; i < inv.size(); ++i) {
    double base = 1.0 / std::pow(500000.0, 2.0 * i / 128.0);
    double wavelen = 2 * M_PI / base;
    double expected;
    if (wavelen < high_wavelen) {
      expected = base, ++kept;
    } else if (wavelen > low_wavelen) {
      expected = base / 8.0, ++scaled;
    } else {
      double smooth = (8192 / wavelen - 1.0) / (4.0 - 1.0);
      expected = (1 - smooth) * base / 8.0 + smooth * base, ++smoothed;
    }
    EXPECT_NEAR(inv[i], expected, 1e-6 * expected) << i;
  }
  // All three bands are exercised.
  EXPECT_GT(kept, 0);
  EXPECT_GT(scaled, 0);
  EXPECT_GT(smoothed, 0);
}

// Values printed by PyTorch 1.13 (float32) running the two transformers functions above
// for theta 500000, head_dim 128, llama3 factor 8, low 1, high 4, original 8192; the
// float32 steps are mirrored op by op, so they match to the bit.
TEST(RopeInverseFrequencies, MatchesTorchFloat32Bits) {
  LlamaConfig c = small_config();
  c.head_dim = 128;
  c.rope_theta = 500000.0;
  c.rope_scaling = {"llama3", 8.0, 1.0, 4.0, 8192};
  std::vector<double> inv = rope_inverse_frequencies(c);
  const std::vector<std::pair<int, double>> torch_values = {
      {1, 0.8146172165870667},        {20, 0.016560440883040428},   {25, 0.005940730683505535},
      {30, 0.0013718936825171113},    {35, 9.556212171446532e-05},  {45, 1.2297638932068367e-05},
      {63, 3.068925877869333e-07}};
  for (const auto& [i, value] : torch_values) EXPECT_EQ(inv.at(i), value) << i;
}

}  // namespace
}  // namespace xcomp
