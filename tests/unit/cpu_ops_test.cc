// Each CPU op against a double-precision evaluation of its definition (model/ops.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "model/cpu/cpu_ops.h"

namespace xcomp {
namespace {

Tensor filled(Shape shape, double seed) {
  Tensor t = Tensor::empty(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(std::sin(seed + 0.731 * i) * 1.5);
  return t;
}

Tensor ints(Shape shape, std::vector<int32_t> values) {
  Tensor t = Tensor::empty(std::move(shape), DType::I32);
  EXPECT_EQ(static_cast<int64_t>(values.size()), t.numel());
  std::copy(values.begin(), values.end(), t.data<int32_t>());
  return t;
}

void expect_close(const Tensor& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(got.data<float>()[i], want[i], tol * (1 + std::fabs(want[i]))) << "element " << i;
}

TEST(CpuOps, LinearIsXTimesWeightTransposed) {
  CpuOps ops;
  const int64_t m = 5, k = 7, n = 3;
  Tensor x = filled({m, k}, 0.1), w = filled({n, k}, 0.9), y = Tensor::empty({m, n});
  ops.linear(x, w, y);
  std::vector<double> want(m * n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < k; ++p) want[i * n + j] += double(x.data<float>()[i * k + p]) * w.data<float>()[j * k + p];
  expect_close(y, want, 1e-6);
}

TEST(CpuOps, EmbeddingGathersRows) {
  CpuOps ops;
  Tensor table = filled({6, 4}, 0.3), out = Tensor::empty({3, 4});
  ops.embedding(table, ints({3}, {5, 0, 5}), out);
  std::vector<double> want;
  for (int row : {5, 0, 5})
    for (int i = 0; i < 4; ++i) want.push_back(table.data<float>()[row * 4 + i]);
  expect_close(out, want, 0);
}

TEST(CpuOps, RmsnormMatchesDefinition) {
  CpuOps ops;
  const int64_t rows = 4, h = 9;
  Tensor x = filled({rows, h}, 0.2), w = filled({h}, 1.7), y = Tensor::empty({rows, h});
  ops.rmsnorm(x, w, 1e-5f, y);
  std::vector<double> want(rows * h);
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < h; ++i) ss += double(x.data<float>()[r * h + i]) * x.data<float>()[r * h + i];
    const double inv = 1 / std::sqrt(ss / h + 1e-5);
    for (int64_t i = 0; i < h; ++i) want[r * h + i] = x.data<float>()[r * h + i] * inv * w.data<float>()[i];
  }
  expect_close(y, want, 1e-6);
}

TEST(CpuOps, RopeRotatesHalves) {
  CpuOps ops;
  const int64_t b = 2, t = 3, heads = 2, d = 8;
  Tensor x = filled({b, t, heads, d}, 0.4);
  const Tensor before = x.clone();
  Tensor pos = ints({b, t}, {0, 1, 2, 7, 100, 3});
  Tensor inv_freq = Tensor::empty({d / 2});
  for (int64_t i = 0; i < d / 2; ++i) inv_freq.data<float>()[i] = static_cast<float>(std::pow(10000.0, -2.0 * i / d));
  ops.rope(x, pos, inv_freq);
  std::vector<double> want(x.numel());
  for (int64_t bt = 0; bt < b * t; ++bt)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < d / 2; ++i) {
        const double angle = double(pos.data<int32_t>()[bt]) * inv_freq.data<float>()[i];
        const float* src = before.data<float>() + (bt * heads + h) * d;
        want[(bt * heads + h) * d + i] = src[i] * std::cos(angle) - src[i + d / 2] * std::sin(angle);
        want[(bt * heads + h) * d + i + d / 2] = src[i + d / 2] * std::cos(angle) + src[i] * std::sin(angle);
      }
  expect_close(x, want, 2e-5);  // float32 angle at position 100
}

TEST(CpuOps, SwigluIsSiluTimesUp) {
  CpuOps ops;
  Tensor g = filled({11}, 0.5), u = filled({11}, 2.5), o = Tensor::empty({11});
  ops.swiglu(g, u, o);
  std::vector<double> want(11);
  for (int i = 0; i < 11; ++i) {
    const double gv = g.data<float>()[i];
    want[i] = gv / (1 + std::exp(-gv)) * u.data<float>()[i];
  }
  expect_close(o, want, 1e-6);
}

TEST(CpuOps, WriteRowsPlacesEntriesAtOffset) {
  CpuOps ops;
  Tensor dst = Tensor::zeros({2, 5, 3}), src = filled({2, 2, 3}, 0.6);
  ops.write_rows(src, dst, 3);
  for (int b = 0; b < 2; ++b)
    for (int s = 0; s < 5; ++s)
      for (int i = 0; i < 3; ++i) {
        const float want = s >= 3 ? src.data<float>()[(b * 2 + s - 3) * 3 + i] : 0.0f;
        EXPECT_EQ(dst.data<float>()[(b * 5 + s) * 3 + i], want);
      }
}

// Reference attention in double, following the visibility rule of Ops::attention.
std::vector<double> reference_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length,
                                        const Tensor& valid) {
  const int64_t b = q.dim(0), t = q.dim(1), heads = q.dim(2), d = q.dim(3);
  const int64_t cap = k.dim(1), kvh = k.dim(2), group = heads / kvh;
  std::vector<double> out(q.numel(), 0.0);
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t ti = 0; ti < t; ++ti)
      for (int64_t h = 0; h < heads; ++h) {
        std::vector<double> w;
        std::vector<int64_t> keys;
        for (int64_t s = 0; s <= length - t + ti; ++s) {
          if (!valid.data<int32_t>()[bi * cap + s]) continue;
          double dot = 0;
          for (int64_t i = 0; i < d; ++i)
            dot += double(q.data<float>()[((bi * t + ti) * heads + h) * d + i]) *
                   k.data<float>()[((bi * cap + s) * kvh + h / group) * d + i];
          w.push_back(dot / std::sqrt(double(d)));
          keys.push_back(s);
        }
        if (keys.empty()) continue;
        double mx = *std::max_element(w.begin(), w.end()), total = 0;
        for (double& x : w) total += (x = std::exp(x - mx));
        for (size_t j = 0; j < keys.size(); ++j)
          for (int64_t i = 0; i < d; ++i)
            out[((bi * t + ti) * heads + h) * d + i] +=
                w[j] / total * v.data<float>()[((bi * cap + keys[j]) * kvh + h / group) * d + i];
      }
  return out;
}

TEST(CpuOps, AttentionWithPrefixPaddingAndGroupedHeads) {
  CpuOps ops;
  const int64_t b = 2, t = 3, heads = 4, kvh = 2, d = 6, cap = 9, length = 7;  // 4 prefix entries + 3 new
  Tensor q = filled({b, t, heads, d}, 0.1), k = filled({b, cap, kvh, d}, 1.1), v = filled({b, cap, kvh, d}, 2.1);
  // Row 0: all valid. Row 1: prefix entry 1 is padding, and the last query is padding.
  Tensor valid = ints({b, cap}, {1, 1, 1, 1, 1, 1, 1, 0, 0, /**/ 1, 0, 1, 1, 1, 1, 0, 0, 0});
  Tensor out = Tensor::empty(q.shape());
  ops.attention(q, k, v, length, valid, out);
  expect_close(out, reference_attention(q, k, v, length, valid), 1e-5);
}

TEST(CpuOps, AttentionQueryThatSeesNothingGetsZeros) {
  CpuOps ops;
  Tensor q = filled({1, 1, 2, 4}, 0.2), k = filled({1, 2, 1, 4}, 0.3), v = filled({1, 2, 1, 4}, 0.4);
  Tensor valid = ints({1, 2}, {0, 0}), out = filled({1, 1, 2, 4}, 9.0);
  ops.attention(q, k, v, 2, valid, out);
  for (int64_t i = 0; i < out.numel(); ++i) EXPECT_EQ(out.data<float>()[i], 0.0f);
}

}  // namespace
}  // namespace xcomp
