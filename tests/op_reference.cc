#include "tests/op_reference.h"

#include <algorithm>
#include <cmath>

namespace xcomp::test {

Vec linear(const Vec& x, const Vec& w, int64_t m, int64_t k, int64_t n) {
  Vec y(m * n, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < k; ++p) y[i * n + j] += x[i * k + p] * w[j * k + p];
  return y;
}

Vec rmsnorm(const Vec& x, const Vec& w, double eps) {
  const size_t h = w.size();
  Vec y(x.size());
  for (size_t r = 0; r < x.size() / h; ++r) {
    double ss = 0;
    for (size_t i = 0; i < h; ++i) ss += x[r * h + i] * x[r * h + i];
    const double inv = 1 / std::sqrt(ss / h + eps);
    for (size_t i = 0; i < h; ++i) y[r * h + i] = x[r * h + i] * inv * w[i];
  }
  return y;
}

Vec rope(const Vec& x, const std::vector<int32_t>& positions, const Vec& inv_freq, int64_t heads, int64_t d) {
  Vec y(x.size());
  const int64_t half = d / 2;
  for (size_t bt = 0; bt < positions.size(); ++bt)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const double angle = positions[bt] * inv_freq[i];
        const double* src = &x[(bt * heads + h) * d];
        y[(bt * heads + h) * d + i] = src[i] * std::cos(angle) - src[i + half] * std::sin(angle);
        y[(bt * heads + h) * d + i + half] = src[i + half] * std::cos(angle) + src[i] * std::sin(angle);
      }
  return y;
}

Vec swiglu(const Vec& gate, const Vec& up) {
  Vec y(gate.size());
  for (size_t i = 0; i < gate.size(); ++i) y[i] = gate[i] / (1 + std::exp(-gate[i])) * up[i];
  return y;
}

Vec attention(const Vec& q, const Vec& k, const Vec& v, const std::vector<int32_t>& valid, const AttentionShape& s) {
  const int64_t group = s.heads / s.kv_heads;
  Vec out(q.size(), 0.0);
  for (int64_t bi = 0; bi < s.b; ++bi)
    for (int64_t ti = 0; ti < s.t; ++ti)
      for (int64_t h = 0; h < s.heads; ++h) {
        Vec w;
        std::vector<int64_t> keys;
        for (int64_t key = 0; key <= s.length - s.t + ti; ++key) {
          if (!valid[bi * s.capacity + key]) continue;
          double dot = 0;
          for (int64_t i = 0; i < s.d; ++i)
            dot += q[((bi * s.t + ti) * s.heads + h) * s.d + i] *
                   k[((bi * s.capacity + key) * s.kv_heads + h / group) * s.d + i];
          w.push_back(dot / std::sqrt(double(s.d)));
          keys.push_back(key);
        }
        if (keys.empty()) continue;
        double mx = *std::max_element(w.begin(), w.end()), total = 0;
        for (double& x : w) total += (x = std::exp(x - mx));
        for (size_t j = 0; j < keys.size(); ++j)
          for (int64_t i = 0; i < s.d; ++i)
            out[((bi * s.t + ti) * s.heads + h) * s.d + i] +=
                w[j] / total * v[((bi * s.capacity + keys[j]) * s.kv_heads + h / group) * s.d + i];
      }
  return out;
}

Vec cross_entropy(const Vec& logits, const std::vector<int32_t>& targets, const Vec& weights) {
  const size_t vocab = logits.size() / targets.size();
  Vec losses(targets.size(), 0.0);
  for (size_t r = 0; r < targets.size(); ++r) {
    if (targets[r] < 0) continue;
    const double* row = &logits[r * vocab];
    const double mx = *std::max_element(row, row + vocab);
    double total = 0;
    for (size_t i = 0; i < vocab; ++i) total += std::exp(row[i] - mx);
    losses[r] = weights[r] * (std::log(total) + mx - row[targets[r]]);
  }
  return losses;
}

}  // namespace xcomp::test
