// Each CPU backward op against finite differences of the double-precision definition:
// for a fixed output gradient g, d/dx sum(g * f(x)) computed both ways.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "model/cpu/cpu_ops.h"
#include "tests/op_tensors.h"

namespace xcomp {
namespace {

using namespace xcomp::test;

constexpr double kTolerance = 2e-5;  // fp32 analytic gradients vs double finite differences

TEST(CpuOpsBackward, LinearInputAndWeightGradients) {
  CpuOps ops;
  const int64_t m = 4, k = 6, n = 5;
  Tensor x = smooth_tensor({m, k}, 0.1), w = smooth_tensor({n, k}, 0.7), g = smooth_tensor({m, n}, 1.3);
  Tensor dx = Tensor::empty({m, k}), dw = Tensor::empty({n, k});
  ops.linear_backward_input(g, w, dx, false);
  ops.linear_backward_weight(g, x, dw, false);
  const Vec wv = to_vec(w), xv = to_vec(x);
  EXPECT_LT(scaled_error(dx, numerical_gradient([&](const Vec& xs) { return test::linear(xs, wv, m, k, n); }, xv, to_vec(g))),
            kTolerance);
  EXPECT_LT(scaled_error(dw, numerical_gradient([&](const Vec& ws) { return test::linear(xv, ws, m, k, n); }, wv, to_vec(g))),
            kTolerance);
  // accumulate adds to what is there
  Tensor twice = dx.clone();
  ops.linear_backward_input(g, w, twice, true);
  for (int64_t i = 0; i < dx.numel(); ++i) EXPECT_FLOAT_EQ(twice.data<float>()[i], 2 * dx.data<float>()[i]);
}

TEST(CpuOpsBackward, Rmsnorm) {
  CpuOps ops;
  Tensor x = smooth_tensor({3, 8}, 0.2), w = smooth_tensor({8}, 1.1), g = smooth_tensor({3, 8}, 0.5);
  Tensor dx = Tensor::empty({3, 8});
  ops.rmsnorm_backward(g, x, w, 1e-5f, dx, false);
  const Vec wv = to_vec(w);
  EXPECT_LT(scaled_error(dx, numerical_gradient([&](const Vec& xs) { return test::rmsnorm(xs, wv, 1e-5); }, to_vec(x),
                                                to_vec(g))),
            kTolerance);
}

TEST(CpuOpsBackward, Rope) {
  CpuOps ops;
  const int64_t heads = 3, d = 8;
  Tensor g = smooth_tensor({2, 2, heads, d}, 0.3), x = smooth_tensor({2, 2, heads, d}, 0.9);
  Tensor pos = int_tensor({2, 2}, {0, 5, 17, 2});
  Tensor inv_freq = Tensor::empty({d / 2});
  for (int64_t i = 0; i < d / 2; ++i) inv_freq.data<float>()[i] = static_cast<float>(std::pow(500.0, -2.0 * i / d));
  Tensor dx = g.clone();
  ops.rope_backward(dx, pos, inv_freq);
  const Vec freq = to_vec(inv_freq);
  const std::vector<int32_t> p = to_ints(pos);
  EXPECT_LT(scaled_error(dx, numerical_gradient([&](const Vec& xs) { return test::rope(xs, p, freq, heads, d); },
                                                to_vec(x), to_vec(g))),
            kTolerance);
}

TEST(CpuOpsBackward, Swiglu) {
  CpuOps ops;
  Tensor gate = smooth_tensor({13}, 0.4, 3.0), up = smooth_tensor({13}, 1.4), g = smooth_tensor({13}, 2.2);
  Tensor dgate = Tensor::empty({13}), dup = Tensor::empty({13});
  ops.swiglu_backward(g, gate, up, dgate, dup);
  const Vec gv = to_vec(gate), uv = to_vec(up);
  EXPECT_LT(scaled_error(dgate, numerical_gradient([&](const Vec& a) { return test::swiglu(a, uv); }, gv, to_vec(g))),
            kTolerance);
  EXPECT_LT(scaled_error(dup, numerical_gradient([&](const Vec& b) { return test::swiglu(gv, b); }, uv, to_vec(g))),
            kTolerance);
}

TEST(CpuOpsBackward, AttentionWithPrefixPaddingAndGroupedHeads) {
  CpuOps ops;
  const AttentionShape s{2, 3, 4, 2, 5, 8, 7};  // 4 prefix entries + 3 new, capacity 8
  Tensor q = smooth_tensor({s.b, s.t, s.heads, s.d}, 0.1);
  Tensor k = smooth_tensor({s.b, s.capacity, s.kv_heads, s.d}, 1.1);
  Tensor v = smooth_tensor({s.b, s.capacity, s.kv_heads, s.d}, 2.1);
  Tensor g = smooth_tensor({s.b, s.t, s.heads, s.d}, 3.1);
  Tensor valid = int_tensor({s.b, s.capacity}, {1, 1, 1, 1, 1, 1, 1, 0, /**/ 1, 0, 1, 1, 1, 1, 0, 0});
  Tensor dq = Tensor::empty(q.shape()), dk = Tensor::zeros(k.shape()), dv = Tensor::zeros(v.shape());
  ops.attention_backward(g, q, k, v, s.length, valid, dq, dk, dv);
  const Vec qv = to_vec(q), kv = to_vec(k), vv = to_vec(v), gv = to_vec(g);
  const std::vector<int32_t> m = to_ints(valid);
  EXPECT_LT(scaled_error(dq, numerical_gradient([&](const Vec& a) { return test::attention(a, kv, vv, m, s); }, qv, gv)),
            kTolerance);
  EXPECT_LT(scaled_error(dk, numerical_gradient([&](const Vec& a) { return test::attention(qv, a, vv, m, s); }, kv, gv)),
            kTolerance);
  EXPECT_LT(scaled_error(dv, numerical_gradient([&](const Vec& a) { return test::attention(qv, kv, a, m, s); }, vv, gv)),
            kTolerance);
}

// Training runs the backward on the inputs of an earlier forward, whose probabilities
// the CPU backend keeps: the gradients must be the recomputing backward's bit for bit,
// and a forward whose inputs were changed in place afterwards must not lend its
// probabilities to the backward of the new values.
TEST(CpuOpsBackward, AttentionAfterAForwardGivesTheSameGradientsBitForBit) {
  const AttentionShape s{2, 3, 4, 2, 5, 8, 7};
  Tensor q = smooth_tensor({s.b, s.t, s.heads, s.d}, 0.1);
  Tensor k = smooth_tensor({s.b, s.capacity, s.kv_heads, s.d}, 1.1);
  Tensor v = smooth_tensor({s.b, s.capacity, s.kv_heads, s.d}, 2.1);
  Tensor g = smooth_tensor({s.b, s.t, s.heads, s.d}, 3.1);
  Tensor valid = int_tensor({s.b, s.capacity}, {1, 1, 1, 1, 1, 1, 1, 0, /**/ 1, 0, 1, 1, 1, 1, 0, 0});
  auto backward = [&](CpuOps& ops) {
    std::vector<Tensor> grads{Tensor::empty(q.shape()), Tensor::zeros(k.shape()), Tensor::zeros(v.shape())};
    ops.attention_backward(g, q, k, v, s.length, valid, grads[0], grads[1], grads[2]);
    return grads;
  };
  auto expect_identical = [](const std::vector<Tensor>& got, const std::vector<Tensor>& want, const char* what) {
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_EQ(std::memcmp(got[i].raw(), want[i].raw(), got[i].nbytes()), 0) << what << ", gradient " << i;
  };
  CpuOps fresh;
  const std::vector<Tensor> recomputed = backward(fresh);

  CpuOps ops;
  Tensor out = Tensor::empty(q.shape());
  ops.attention(q, k, v, s.length, valid, out);
  expect_identical(backward(ops), recomputed, "after the forward");

  ops.attention(q, k, v, s.length, valid, out);
  q.data<float>()[5] += 0.25f;  // in place, after the forward
  k.data<float>()[3] -= 0.5f;
  CpuOps fresh_again;
  expect_identical(backward(ops), backward(fresh_again), "inputs changed after the forward");
}

TEST(CpuOpsBackward, CrossEntropy) {
  CpuOps ops;
  Tensor logits = smooth_tensor({3, 7}, 0.6, 3.0), losses = Tensor::empty({3}), grad = Tensor::empty({3, 7});
  Tensor targets = int_tensor({3}, {2, 6, -1});
  Tensor weights = Tensor::empty({3});
  weights.data<float>()[0] = 1.0f, weights.data<float>()[1] = 0.3f, weights.data<float>()[2] = 1.0f;
  ops.cross_entropy(logits, targets, weights, losses, grad);
  const std::vector<int32_t> t = to_ints(targets);
  const Vec w = to_vec(weights);
  EXPECT_LT(scaled_error(grad, numerical_gradient([&](const Vec& z) { return test::cross_entropy(z, t, w); },
                                                  to_vec(logits), Vec(3, 1.0))),
            kTolerance);
}

}  // namespace
}  // namespace xcomp
