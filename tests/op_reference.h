// Double-precision evaluations of the op set's definitions (model/ops.h), for testing
// every backend's forward ops and, through finite differences, their backward ops.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace xcomp::test {

using Vec = std::vector<double>;

// y[M, N] = x[M, K] . w[N, K]^T
Vec linear(const Vec& x, const Vec& w, int64_t m, int64_t k, int64_t n);
// Row-wise RMSNorm of x [rows, h] with weight w [h].
Vec rmsnorm(const Vec& x, const Vec& w, double eps);
// Rotate-half RoPE of x [B, T, heads, d] at positions [B, T] with inverse frequencies [d/2].
Vec rope(const Vec& x, const std::vector<int32_t>& positions, const Vec& inv_freq, int64_t heads, int64_t d);
Vec swiglu(const Vec& gate, const Vec& up);

struct AttentionShape {
  int64_t b, t, heads, kv_heads, d, capacity, length;
};
// q [B, T, heads, d]; k, v [B, capacity, kv_heads, d]; valid [B, capacity].
Vec attention(const Vec& q, const Vec& k, const Vec& v, const std::vector<int32_t>& valid, const AttentionShape& s);

// Per-row weighted cross-entropy of logits [M, V] (target -1: no loss).
Vec cross_entropy(const Vec& logits, const std::vector<int32_t>& targets, const Vec& weights);

// The gradient of sum(g * f(x)) with respect to x, by central differences in double.
template <class F>
Vec numerical_gradient(const F& f, Vec x, const Vec& g, double step = 1e-6) {
  Vec grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + step;
    const Vec up = f(x);
    x[i] = saved - step;
    const Vec down = f(x);
    x[i] = saved;
    double diff = 0;
    for (size_t j = 0; j < g.size(); ++j) diff += g[j] * (up[j] - down[j]);
    grad[i] = diff / (2 * step);
  }
  return grad;
}

}  // namespace xcomp::test
