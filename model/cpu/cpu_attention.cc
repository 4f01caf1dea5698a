// Grouped-query causal attention of the CPU backend (see Ops::attention for the
// visibility rule). Work is split by (row, kv head): that thread gathers the kv head's
// keys and values transposed, [head_dim][length], so every inner loop runs over
// contiguous key positions and vectorises, and it owns that kv head's dk/dv in backward
// (no races). Invisible keys get a score of -inf, so the mask costs no branches.
#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "model/cpu/cpu_ops.h"

namespace xcomp {

namespace {

struct AttentionShape {
  int64_t b, t, heads, d, capacity, kv_heads, group, length;
  float scale;
};

AttentionShape check_shapes(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length, const Tensor& valid,
                            const Tensor& out) {
  CHECK_EQ(q.ndim(), 4);
  CHECK_EQ(k.ndim(), 4);
  AttentionShape s;
  s.b = q.dim(0), s.t = q.dim(1), s.heads = q.dim(2), s.d = q.dim(3);
  s.capacity = k.dim(1), s.kv_heads = k.dim(2);
  CHECK_EQ(k.dim(0), s.b);
  CHECK_EQ(k.dim(3), s.d);
  CHECK(v.shape() == k.shape());
  CHECK_EQ(s.heads % s.kv_heads, 0);
  CHECK(s.t <= length && length <= s.capacity) << "attention: T " << s.t << ", length " << length << ", capacity "
                                              << s.capacity;
  CHECK_EQ(valid.numel(), s.b * s.capacity);
  CHECK(out.shape() == q.shape());
  s.group = s.heads / s.kv_heads;
  s.length = length;
  s.scale = 1.0f / std::sqrt(static_cast<float>(s.d));
  return s;
}

// One (row, kv head): transposed keys and values, and per-query scratch.
struct HeadWork {
  explicit HeadWork(const AttentionShape& s)
      : kt(s.d * s.length), vt(s.d * s.length), probs(s.length), dprobs(s.length) {}
  std::vector<float> kt, vt;  // [d][length]
  std::vector<float> probs, dprobs;
};

void gather_transposed(const float* src, const AttentionShape& s, int64_t bi, int64_t kh, std::vector<float>& dst) {
  for (int64_t pos = 0; pos < s.length; ++pos) {
    const float* row = src + ((bi * s.capacity + pos) * s.kv_heads + kh) * s.d;
    for (int64_t i = 0; i < s.d; ++i) dst[i * s.length + pos] = row[i];
  }
}

// probs[0..last] = softmax of the visible scores (0 where invisible). Returns false when
// the query sees no key.
bool softmax_row(const float* q, const HeadWork& w, const AttentionShape& s, const int32_t* valid, int64_t last,
                 float* probs) {
  const int64_t n = last + 1;
  std::fill(probs, probs + n, 0.0f);
  for (int64_t i = 0; i < s.d; ++i) {
    const float qi = q[i] * s.scale;
    const float* krow = w.kt.data() + i * s.length;
#pragma omp simd
    for (int64_t pos = 0; pos < n; ++pos) probs[pos] += qi * krow[pos];
  }
  float max_score = -std::numeric_limits<float>::infinity();
  for (int64_t pos = 0; pos < n; ++pos) {
    if (!valid[pos]) probs[pos] = -std::numeric_limits<float>::infinity();
    max_score = std::max(max_score, probs[pos]);
  }
  if (max_score == -std::numeric_limits<float>::infinity()) return false;
  float total = 0;
  for (int64_t pos = 0; pos < n; ++pos) {
    probs[pos] = std::exp(probs[pos] - max_score);
    total += probs[pos];
  }
  const float inv = 1.0f / total;
#pragma omp simd
  for (int64_t pos = 0; pos < n; ++pos) probs[pos] *= inv;
  return true;
}

float dot(const float* a, const float* b, int64_t n) {
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

}  // namespace

void CpuOps::attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length, const Tensor& key_valid,
                       Tensor& out) {
  const AttentionShape s = check_shapes(q, k, v, length, key_valid, out);
  const float* qs = q.data<float>();
  const int32_t* valid = key_valid.data<int32_t>();
  float* os = out.data<float>();
#pragma omp parallel
  {
    HeadWork w(s);
#pragma omp for collapse(2) schedule(static)
    for (int64_t bi = 0; bi < s.b; ++bi) {
      for (int64_t kh = 0; kh < s.kv_heads; ++kh) {
        gather_transposed(k.data<float>(), s, bi, kh, w.kt);
        gather_transposed(v.data<float>(), s, bi, kh, w.vt);
        for (int64_t ti = 0; ti < s.t; ++ti) {
          const int64_t last = s.length - s.t + ti;
          for (int64_t h = kh * s.group; h < (kh + 1) * s.group; ++h) {
            const int64_t at = ((bi * s.t + ti) * s.heads + h) * s.d;
            float* o = os + at;
            if (!softmax_row(qs + at, w, s, valid + bi * s.capacity, last, w.probs.data())) {
              std::fill(o, o + s.d, 0.0f);
              continue;
            }
            for (int64_t i = 0; i < s.d; ++i) o[i] = dot(w.probs.data(), w.vt.data() + i * s.length, last + 1);
          }
        }
      }
    }
  }
}

void CpuOps::attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                int64_t length, const Tensor& key_valid, Tensor& dq, Tensor& dk, Tensor& dv) {
  const AttentionShape s = check_shapes(q, k, v, length, key_valid, dout);
  CHECK(dq.shape() == q.shape() && dk.shape() == k.shape() && dv.shape() == v.shape());
  const float* qs = q.data<float>();
  const float* dos = dout.data<float>();
  const int32_t* valid = key_valid.data<int32_t>();
  float* dqs = dq.data<float>();
  float* dks = dk.data<float>();
  float* dvs = dv.data<float>();
#pragma omp parallel
  {
    HeadWork w(s);
    std::vector<float> dkt(s.d * s.length), dvt(s.d * s.length);
#pragma omp for collapse(2) schedule(static)
    for (int64_t bi = 0; bi < s.b; ++bi) {
      for (int64_t kh = 0; kh < s.kv_heads; ++kh) {
        gather_transposed(k.data<float>(), s, bi, kh, w.kt);
        gather_transposed(v.data<float>(), s, bi, kh, w.vt);
        std::fill(dkt.begin(), dkt.end(), 0.0f);
        std::fill(dvt.begin(), dvt.end(), 0.0f);
        for (int64_t ti = 0; ti < s.t; ++ti) {
          const int64_t last = s.length - s.t + ti, n = last + 1;
          for (int64_t h = kh * s.group; h < (kh + 1) * s.group; ++h) {
            const int64_t at = ((bi * s.t + ti) * s.heads + h) * s.d;
            const float* qv = qs + at;
            const float* go = dos + at;
            float* gq = dqs + at;
            float* p = w.probs.data();
            float* dp = w.dprobs.data();
            if (!softmax_row(qv, w, s, valid + bi * s.capacity, last, p)) {  // output was 0
              std::fill(gq, gq + s.d, 0.0f);
              continue;
            }
            // dP = dout . v_pos; dS = P (dP - sum_j P_j dP_j) * scale.
            std::fill(dp, dp + n, 0.0f);
            for (int64_t i = 0; i < s.d; ++i) {
              const float g = go[i];
              const float* vrow = w.vt.data() + i * s.length;
#pragma omp simd
              for (int64_t pos = 0; pos < n; ++pos) dp[pos] += g * vrow[pos];
            }
            const float weighted = dot(p, dp, n);
#pragma omp simd
            for (int64_t pos = 0; pos < n; ++pos) dp[pos] = p[pos] * (dp[pos] - weighted) * s.scale;
            for (int64_t i = 0; i < s.d; ++i) {
              gq[i] = dot(dp, w.kt.data() + i * s.length, n);
              float* dk_row = dkt.data() + i * s.length;
              float* dv_row = dvt.data() + i * s.length;
              const float qi = qv[i], gi = go[i];
#pragma omp simd
              for (int64_t pos = 0; pos < n; ++pos) {
                dk_row[pos] += dp[pos] * qi;
                dv_row[pos] += p[pos] * gi;
              }
            }
          }
        }
        for (int64_t pos = 0; pos < s.length; ++pos) {
          float* dk_out = dks + ((bi * s.capacity + pos) * s.kv_heads + kh) * s.d;
          float* dv_out = dvs + ((bi * s.capacity + pos) * s.kv_heads + kh) * s.d;
          for (int64_t i = 0; i < s.d; ++i) {
            dk_out[i] += dkt[i * s.length + pos];
            dv_out[i] += dvt[i * s.length + pos];
          }
        }
      }
    }
  }
}

}  // namespace xcomp
