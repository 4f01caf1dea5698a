// Grouped-query causal attention of the CPU backend: one softmax per (row, query, head),
// over the keys that query may see (see Ops::attention for the visibility rule).
#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "model/cpu/cpu_ops.h"

namespace xcomp {

void CpuOps::attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length, const Tensor& key_valid,
                       Tensor& out) {
  CHECK_EQ(q.ndim(), 4);
  CHECK_EQ(k.ndim(), 4);
  const int64_t b = q.dim(0), t = q.dim(1), heads = q.dim(2), d = q.dim(3);
  const int64_t capacity = k.dim(1), kv_heads = k.dim(2);
  CHECK_EQ(k.dim(0), b);
  CHECK_EQ(k.dim(3), d);
  CHECK(v.shape() == k.shape());
  CHECK_EQ(heads % kv_heads, 0);
  CHECK(t <= length && length <= capacity) << "attention: T " << t << ", length " << length << ", capacity " << capacity;
  CHECK_EQ(key_valid.numel(), b * capacity);
  CHECK(out.shape() == q.shape());
  const int64_t group = heads / kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const float* qs = q.data<float>();
  const float* ks = k.data<float>();
  const float* vs = v.data<float>();
  const int32_t* valid = key_valid.data<int32_t>();
  float* os = out.data<float>();

#pragma omp parallel
  {
    std::vector<float> scores(length);
#pragma omp for collapse(3) schedule(static)
    for (int64_t bi = 0; bi < b; ++bi) {
      for (int64_t ti = 0; ti < t; ++ti) {
        for (int64_t h = 0; h < heads; ++h) {
          const int64_t last_key = length - t + ti;  // inclusive
          const int64_t kh = h / group;
          const float* qv = qs + ((bi * t + ti) * heads + h) * d;
          float* o = os + ((bi * t + ti) * heads + h) * d;
          float max_score = -std::numeric_limits<float>::infinity();
          for (int64_t s = 0; s <= last_key; ++s) {
            if (!valid[bi * capacity + s]) continue;
            const float* kv = ks + ((bi * capacity + s) * kv_heads + kh) * d;
            float dot = 0;
            for (int64_t i = 0; i < d; ++i) dot += qv[i] * kv[i];
            scores[s] = dot * scale;
            max_score = std::max(max_score, scores[s]);
          }
          std::fill(o, o + d, 0.0f);
          if (max_score == -std::numeric_limits<float>::infinity()) continue;  // sees no key
          double total = 0;
          for (int64_t s = 0; s <= last_key; ++s) {
            if (!valid[bi * capacity + s]) continue;
            scores[s] = std::exp(scores[s] - max_score);
            total += scores[s];
          }
          const float inv_total = static_cast<float>(1.0 / total);
          for (int64_t s = 0; s <= last_key; ++s) {
            if (!valid[bi * capacity + s]) continue;
            const float p = scores[s] * inv_total;
            const float* vv = vs + ((bi * capacity + s) * kv_heads + kh) * d;
            for (int64_t i = 0; i < d; ++i) o[i] += p * vv[i];
          }
        }
      }
    }
  }
}

}  // namespace xcomp

namespace xcomp {

// Parallel over (row, kv head): every query head of a group and every query of the row
// is handled by one thread, so the += into that kv head's dk/dv never races.
void CpuOps::attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                int64_t length, const Tensor& key_valid, Tensor& dq, Tensor& dk, Tensor& dv) {
  const int64_t b = q.dim(0), t = q.dim(1), heads = q.dim(2), d = q.dim(3);
  const int64_t capacity = k.dim(1), kv_heads = k.dim(2), group = heads / kv_heads;
  CHECK(dout.shape() == q.shape() && dq.shape() == q.shape());
  CHECK(dk.shape() == k.shape() && dv.shape() == v.shape() && v.shape() == k.shape());
  CHECK(t <= length && length <= capacity);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const float* qs = q.data<float>();
  const float* ks = k.data<float>();
  const float* vs = v.data<float>();
  const float* dos = dout.data<float>();
  const int32_t* valid = key_valid.data<int32_t>();
  float* dqs = dq.data<float>();
  float* dks = dk.data<float>();
  float* dvs = dv.data<float>();

#pragma omp parallel
  {
    std::vector<float> probs(length), dprobs(length);
#pragma omp for collapse(2) schedule(static)
    for (int64_t bi = 0; bi < b; ++bi) {
      for (int64_t kh = 0; kh < kv_heads; ++kh) {
        for (int64_t ti = 0; ti < t; ++ti) {
          for (int64_t h = kh * group; h < (kh + 1) * group; ++h) {
            const int64_t last_key = length - t + ti;
            const float* qv = qs + ((bi * t + ti) * heads + h) * d;
            const float* go = dos + ((bi * t + ti) * heads + h) * d;
            float* gq = dqs + ((bi * t + ti) * heads + h) * d;
            std::fill(gq, gq + d, 0.0f);
            // Recompute the softmax of the forward pass.
            float max_score = -std::numeric_limits<float>::infinity();
            for (int64_t s = 0; s <= last_key; ++s) {
              if (!valid[bi * capacity + s]) continue;
              const float* kv = ks + ((bi * capacity + s) * kv_heads + kh) * d;
              float dot = 0;
              for (int64_t i = 0; i < d; ++i) dot += qv[i] * kv[i];
              probs[s] = dot * scale;
              max_score = std::max(max_score, probs[s]);
            }
            if (max_score == -std::numeric_limits<float>::infinity()) continue;  // saw no key: output was 0
            double total = 0;
            for (int64_t s = 0; s <= last_key; ++s) {
              if (!valid[bi * capacity + s]) continue;
              probs[s] = std::exp(probs[s] - max_score);
              total += probs[s];
            }
            // dP_s = dout . v_s; dS_s = P_s (dP_s - sum_j P_j dP_j).
            double weighted = 0;
            for (int64_t s = 0; s <= last_key; ++s) {
              if (!valid[bi * capacity + s]) continue;
              probs[s] = static_cast<float>(probs[s] / total);
              const float* vv = vs + ((bi * capacity + s) * kv_heads + kh) * d;
              float dot = 0;
              for (int64_t i = 0; i < d; ++i) dot += go[i] * vv[i];
              dprobs[s] = dot;
              weighted += static_cast<double>(probs[s]) * dot;
            }
            for (int64_t s = 0; s <= last_key; ++s) {
              if (!valid[bi * capacity + s]) continue;
              const float ds = probs[s] * (dprobs[s] - static_cast<float>(weighted)) * scale;
              const float* kv = ks + ((bi * capacity + s) * kv_heads + kh) * d;
              float* gk = dks + ((bi * capacity + s) * kv_heads + kh) * d;
              float* gv = dvs + ((bi * capacity + s) * kv_heads + kh) * d;
              for (int64_t i = 0; i < d; ++i) {
                gq[i] += ds * kv[i];
                gk[i] += ds * qv[i];
                gv[i] += probs[s] * go[i];
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace xcomp
