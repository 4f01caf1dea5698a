// Each CPU op's forward against a double-precision evaluation of its definition.
#include <gtest/gtest.h>

#include "model/cpu/cpu_ops.h"
#include "model/half.h"
#include "tests/op_tensors.h"

namespace xcomp {
namespace {

using namespace xcomp::test;

TEST(CpuOps, LinearIsXTimesWeightTransposed) {
  CpuOps ops;
  Tensor x = smooth_tensor({5, 7}, 0.1), w = smooth_tensor({3, 7}, 0.9), y = Tensor::empty({5, 3});
  ops.linear(x, w, y);
  EXPECT_LT(scaled_error(y, test::linear(to_vec(x), to_vec(w), 5, 7, 3)), 1e-6);
}

TEST(CpuOps, LinearAddAddsTheProductIntoY) {
  CpuOps ops;
  Tensor x = smooth_tensor({5, 7}, 0.1), w = smooth_tensor({3, 7}, 0.9), y = smooth_tensor({5, 3}, 2.3);
  Vec want = test::linear(to_vec(x), to_vec(w), 5, 7, 3);
  const Vec before = to_vec(y);
  for (size_t i = 0; i < want.size(); ++i) want[i] += before[i];
  ops.linear_add(x, w, y);
  EXPECT_LT(scaled_error(y, want), 1e-6);
}

TEST(CpuOps, LinearResidualWritesTheSumApartAndLeavesTheResidual) {
  CpuOps ops;
  const Tensor x = smooth_tensor({5, 7}, 0.1), w = smooth_tensor({3, 7}, 0.9), residual = smooth_tensor({5, 3}, 2.3);
  Tensor y = smooth_tensor({5, 3}, 4.1);  // overwritten
  Vec want = test::linear(to_vec(x), to_vec(w), 5, 7, 3);
  const Vec before = to_vec(residual);
  for (size_t i = 0; i < want.size(); ++i) want[i] += before[i];
  ops.linear_residual(x, w, residual, y);
  EXPECT_LT(scaled_error(y, want), 1e-6);
  EXPECT_EQ(to_vec(residual), before);
}

TEST(CpuOps, EmbeddingGathersRows) {
  CpuOps ops;
  Tensor table = smooth_tensor({6, 4}, 0.3), out = Tensor::empty({3, 4});
  ops.embedding(table, int_tensor({3}, {5, 0, 5}), out);
  for (int r = 0; r < 3; ++r)
    for (int i = 0; i < 4; ++i) EXPECT_EQ(out.data<float>()[r * 4 + i], table.data<float>()[(r == 1 ? 0 : 5) * 4 + i]);
}

TEST(CpuOps, RmsnormMatchesDefinition) {
  CpuOps ops;
  Tensor x = smooth_tensor({4, 9}, 0.2), w = smooth_tensor({9}, 1.7), y = Tensor::empty({4, 9});
  ops.rmsnorm(x, w, 1e-5f, y);
  EXPECT_LT(scaled_error(y, test::rmsnorm(to_vec(x), to_vec(w), 1e-5)), 1e-6);
}

Tensor inverse_frequencies(int64_t d) {
  Tensor f = Tensor::empty({d / 2});
  for (int64_t i = 0; i < d / 2; ++i) f.data<float>()[i] = static_cast<float>(std::pow(10000.0, -2.0 * i / d));
  return f;
}

TEST(CpuOps, RopeRotatesHalves) {
  CpuOps ops;
  Tensor x = smooth_tensor({2, 3, 2, 8}, 0.4);
  const Vec before = to_vec(x);
  Tensor pos = int_tensor({2, 3}, {0, 1, 2, 7, 100, 3}), inv_freq = inverse_frequencies(8);
  ops.rope(x, pos, inv_freq);
  EXPECT_LT(scaled_error(x, test::rope(before, to_ints(pos), to_vec(inv_freq), 2, 8)), 2e-5);  // float32 angle at 100
}

TEST(CpuOps, SwigluIsSiluTimesUp) {
  CpuOps ops;
  Tensor g = smooth_tensor({11}, 0.5), u = smooth_tensor({11}, 2.5), o = Tensor::empty({11});
  ops.swiglu(g, u, o);
  EXPECT_LT(scaled_error(o, test::swiglu(to_vec(g), to_vec(u))), 1e-6);
}

TEST(CpuOps, WriteRowsAndReadRowsAreInverse) {
  CpuOps ops;
  Tensor dst = Tensor::zeros({2, 5, 3}), src = smooth_tensor({2, 2, 3}, 0.6), back = Tensor::empty({2, 2, 3});
  ops.write_rows(src, dst, 3);
  for (int b = 0; b < 2; ++b)
    for (int s = 0; s < 5; ++s)
      for (int i = 0; i < 3; ++i) {
        const float want = s >= 3 ? src.data<float>()[(b * 2 + s - 3) * 3 + i] : 0.0f;
        EXPECT_EQ(dst.data<float>()[(b * 5 + s) * 3 + i], want);
      }
  ops.read_rows(dst, 3, back);
  EXPECT_EQ(to_vec(back), to_vec(src));
}

TEST(CpuOps, DropoutKeepsScaledElementsReproducibly) {
  CpuOps ops;
  Tensor x = smooth_tensor({4000}, 0.1), a = Tensor::empty({4000}), b = Tensor::empty({4000});
  ops.dropout(x, 0.25f, 11, 3, 0, a);
  ops.dropout(x, 0.25f, 11, 3, 0, b);
  EXPECT_EQ(to_vec(a), to_vec(b));
  int kept = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float xi = x.data<float>()[i], ai = a.data<float>()[i];
    if (ai != 0.0f) {
      ++kept;
      EXPECT_FLOAT_EQ(ai, xi / 0.75f);
    }
  }
  EXPECT_NEAR(kept / 4000.0, 0.75, 0.03);
  ops.dropout(x, 0.25f, 11, 4, 0, b);  // another stream, another mask
  EXPECT_NE(to_vec(a), to_vec(b));
}

TEST(CpuOps, DropoutFromALaterElementDrawsThatPartOfTheMask) {
  CpuOps ops;
  Tensor x = smooth_tensor({4000}, 0.1), whole = Tensor::empty({4000}), part = Tensor::empty({1500});
  ops.dropout(x, 0.25f, 11, 3, 0, whole);
  ops.dropout(x.slice0(2500, 4000), 0.25f, 11, 3, 2500, part);
  const std::vector<double> w = to_vec(whole);
  EXPECT_EQ(to_vec(part), std::vector<double>(w.begin() + 2500, w.end()));
  ops.dropout(x.slice0(2500, 4000), 0.25f, 11, 3, 0, part);  // the mask's start instead: another draw
  EXPECT_NE(to_vec(part), std::vector<double>(w.begin() + 2500, w.end()));
}

TEST(CpuOps, AttentionWithPrefixPaddingAndGroupedHeads) {
  CpuOps ops;
  const AttentionShape s{2, 3, 4, 2, 6, 9, 7};  // 4 prefix entries + 3 new, capacity 9
  Tensor q = smooth_tensor({s.b, s.t, s.heads, s.d}, 0.1);
  Tensor k = smooth_tensor({s.b, s.capacity, s.kv_heads, s.d}, 1.1);
  Tensor v = smooth_tensor({s.b, s.capacity, s.kv_heads, s.d}, 2.1);
  // Row 0: all valid. Row 1: prefix entry 1 is padding, and the last query is padding.
  Tensor valid = int_tensor({s.b, s.capacity}, {1, 1, 1, 1, 1, 1, 1, 0, 0, /**/ 1, 0, 1, 1, 1, 1, 0, 0, 0});
  Tensor out = Tensor::empty(q.shape());
  ops.attention(q, k, v, s.length, valid, out);
  EXPECT_LT(scaled_error(out, test::attention(to_vec(q), to_vec(k), to_vec(v), to_ints(valid), s)), 1e-6);
}

TEST(CpuOps, AttentionQueryThatSeesNothingGetsZeros) {
  CpuOps ops;
  Tensor q = smooth_tensor({1, 1, 2, 4}, 0.2), k = smooth_tensor({1, 2, 1, 4}, 0.3), v = smooth_tensor({1, 2, 1, 4}, 0.4);
  Tensor valid = int_tensor({1, 2}, {0, 0}), out = smooth_tensor({1, 1, 2, 4}, 9.0);
  ops.attention(q, k, v, 2, valid, out);
  for (int64_t i = 0; i < out.numel(); ++i) EXPECT_EQ(out.data<float>()[i], 0.0f);
}

TEST(CpuOps, CrossEntropyMatchesDefinition) {
  CpuOps ops;
  Tensor logits = smooth_tensor({3, 10}, 0.8, 4.0), losses = Tensor::empty({3}), grad = Tensor::empty({3, 10});
  Tensor targets = int_tensor({3}, {4, -1, 9});
  Tensor weights = Tensor::empty({3});
  weights.data<float>()[0] = 0.5f, weights.data<float>()[1] = 1.0f, weights.data<float>()[2] = 0.25f;
  ops.cross_entropy(logits, targets, weights, losses, grad);
  EXPECT_LT(scaled_error(losses, test::cross_entropy(to_vec(logits), to_ints(targets), to_vec(weights))), 1e-6);
}

// BF16 gradients (a backend whose LM head product reads bf16) are the fp32 ones rounded,
// bit for bit, beside the same losses; a row without a target gets zeros either way.
TEST(CpuOps, CrossEntropyInBf16IsItsFp32GradientRounded) {
  CpuOps ops;
  const Tensor logits = smooth_tensor({3, 37}, 0.8, 4.0);
  const Tensor targets = int_tensor({3}, {4, -1, 36});
  Tensor weights = Tensor::empty({3});
  weights.data<float>()[0] = 0.5f, weights.data<float>()[1] = 1.0f, weights.data<float>()[2] = 0.25f;
  Tensor losses = Tensor::empty({3}), grad = Tensor::empty({3, 37});
  ops.cross_entropy(logits, targets, weights, losses, grad);
  Tensor losses16 = Tensor::empty({3}), grad16 = Tensor::empty({3, 37}, DType::BF16);
  ops.cross_entropy(logits, targets, weights, losses16, grad16);
  for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(losses16.data<float>()[i], losses.data<float>()[i]) << i;
  for (int64_t i = 0; i < grad.numel(); ++i)
    ASSERT_EQ(grad16.data<uint16_t>()[i], f32_to_bf16(grad.data<float>()[i])) << i;
  for (int64_t i = 37; i < 74; ++i) EXPECT_EQ(grad16.data<uint16_t>()[i], 0) << "no target, " << i;
}

}  // namespace
}  // namespace xcomp
