// Hugging Face tensor names and shapes, loading named tensors, and the RoPE row
// permutation from llama2.c's interleaved pairs to Hugging Face's rotate-half.
#include "model/llama_weights.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/half.h"

namespace xcomp {
namespace {

LlamaConfig tiny_config(bool tied) {
  LlamaConfig c;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 4;
  c.vocab_size = 10;
  c.tie_word_embeddings = tied;
  return c;
}

TEST(LlamaWeights, TensorShapesFollowHuggingFace) {
  auto shapes = llama_tensor_shapes(tiny_config(false));
  ASSERT_EQ(shapes.size(), 1 + 2 * 9 + 2u);
  EXPECT_EQ(shapes.front().first, "model.embed_tokens.weight");
  EXPECT_EQ(shapes.front().second, (Shape{10, 8}));
  EXPECT_EQ(shapes[2].first, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(shapes[3].second, (Shape{4, 8}));  // k_proj: kv_heads * head_dim
  EXPECT_EQ(shapes[5].second, (Shape{8, 8}));  // o_proj
  EXPECT_EQ(shapes[9].first, "model.layers.0.mlp.down_proj.weight");
  EXPECT_EQ(shapes[9].second, (Shape{8, 12}));
  EXPECT_EQ(shapes.back().first, "lm_head.weight");
  EXPECT_EQ(llama_tensor_shapes(tiny_config(true)).back().first, "model.norm.weight");
}

TEST(LlamaWeights, FromNamedConvertsToF32AndTiesTheHead) {
  LlamaConfig c = tiny_config(true);
  std::map<std::string, Tensor> named;
  for (const auto& [name, shape] : llama_tensor_shapes(c)) {
    Tensor t = Tensor::empty(shape, DType::BF16);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<uint16_t>()[i] = f32_to_bf16(0.25f * static_cast<float>(i % 7));
    named[name] = t;
  }
  Tensor f32_norm = Tensor::zeros({8});
  named["model.norm.weight"] = f32_norm;
  LlamaWeights w = llama_weights_from_named(c, named);
  EXPECT_EQ(w.embed.dtype(), DType::F32);
  EXPECT_EQ(w.layers.at(1).w_down.data<float>()[3], 0.75f);
  EXPECT_EQ(w.final_norm.raw(), f32_norm.raw());  // F32 stays a view
  EXPECT_EQ(w.lm_head.raw(), w.embed.raw());

  auto back = llama_weights_to_named(c, w);
  ASSERT_EQ(back.size(), llama_tensor_shapes(c).size());
  EXPECT_EQ(back[1].first, "model.layers.0.input_layernorm.weight");
  EXPECT_EQ(back[1].second.raw(), w.layers[0].attn_norm.raw());
}

// Rotates a vector of heads * head_dim by RoPE at `position`, in either convention:
// interleaved pairs (2i, 2i+1) as llama2.c/GGML do, or halves (i, i + head_dim/2) as
// Hugging Face does. Frequency i is theta^(-2i/head_dim) in both.
std::vector<double> rope(const std::vector<double>& x, int64_t heads, int position, bool interleaved) {
  const int64_t hd = static_cast<int64_t>(x.size()) / heads, half = hd / 2;
  std::vector<double> y = x;
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      double angle = position * std::pow(10000.0, -2.0 * i / hd);
      int64_t a = h * hd + (interleaved ? 2 * i : i), b = h * hd + (interleaved ? 2 * i + 1 : i + half);
      y[a] = x[a] * std::cos(angle) - x[b] * std::sin(angle);
      y[b] = x[a] * std::sin(angle) + x[b] * std::cos(angle);
    }
  }
  return y;
}

std::vector<double> matvec(const Tensor& w, const std::vector<double>& x) {
  std::vector<double> y(static_cast<size_t>(w.dim(0)), 0.0);
  for (int64_t r = 0; r < w.dim(0); ++r) {
    for (int64_t c = 0; c < w.dim(1); ++c) y[r] += w.data<float>()[r * w.dim(1) + c] * x[c];
  }
  return y;
}

TEST(LlamaWeights, PermutedRowsTurnInterleavedRopeIntoRotateHalf) {
  const int64_t heads = 3, head_dim = 8, in = 5;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  Tensor w = Tensor::empty({heads * head_dim, in});
  for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = normal(rng);
  std::vector<double> x(in), z(in);
  for (auto& v : x) v = normal(rng);
  for (auto& v : z) v = normal(rng);

  Tensor p = permute_rope_interleaved_to_halves(w, heads);
  ASSERT_EQ(p.shape(), w.shape());
  // The row mapping itself: new row i = old 2i, new row i + head_dim/2 = old 2i + 1.
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < head_dim / 2; ++i) {
      EXPECT_EQ(p.data<float>()[(h * head_dim + i) * in], w.data<float>()[(h * head_dim + 2 * i) * in]);
      EXPECT_EQ(p.data<float>()[(h * head_dim + head_dim / 2 + i) * in], w.data<float>()[(h * head_dim + 2 * i + 1) * in]);
    }
  }
  for (int position : {0, 1, 5, 37}) {
    std::vector<double> old_rot = rope(matvec(w, x), heads, position, true);
    std::vector<double> new_rot = rope(matvec(p, x), heads, position, false);
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < head_dim / 2; ++i) {
        EXPECT_NEAR(new_rot[h * head_dim + i], old_rot[h * head_dim + 2 * i], 1e-9);
        EXPECT_NEAR(new_rot[h * head_dim + head_dim / 2 + i], old_rot[h * head_dim + 2 * i + 1], 1e-9);
      }
    }
    // Attention scores (q . k per head) are unchanged by the relayout.
    std::vector<double> old_k = rope(matvec(w, z), heads, 3, true), new_k = rope(matvec(p, z), heads, 3, false);
    for (int64_t h = 0; h < heads; ++h) {
      double s_old = 0, s_new = 0;
      for (int64_t d = 0; d < head_dim; ++d) {
        s_old += old_rot[h * head_dim + d] * old_k[h * head_dim + d];
        s_new += new_rot[h * head_dim + d] * new_k[h * head_dim + d];
      }
      EXPECT_NEAR(s_old, s_new, 1e-9);
    }
  }
}

}  // namespace
}  // namespace xcomp
