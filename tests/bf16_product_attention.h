// The arithmetic of the CUDA backend's gemm_causal_bf16 attention (model/cuda/
// cuda_attention_gemm.cu with bf16 operands) as a plain loop on host tensors: q, k, v and
// dout rounded to bf16, scores and dP in fp32, P and dS rounded to bf16 where the row
// kernels store them, fp32 sums, a query's keys by Ops::attention's visibility rule. The
// GPU's summation order is not modelled (it moves results by fp32 rounding, far below
// the bf16 steps here), so a whole compressor step with this attention says what error
// the bf16 products give the step, before a GPU runs them (tests/unit/
// bf16_product_attention_test.cc).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "model/half.h"
#include "model/tensor.h"
#include "tests/cuda_rounding_cpu_ops.h"

namespace xcomp::test {

inline float bf16_rounded(float x) { return bf16_to_f32(f32_to_bf16(x)); }

// Ops::attention's arguments: the forward (dout null; writes out) or the backward
// (writes dq, adds into dk and dv).
inline void bf16_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length,
                                   const Tensor& key_valid, const Tensor* dout, Tensor* out, Tensor* dq, Tensor* dk,
                                   Tensor* dv) {
  const int64_t batch = q.dim(0), t_count = q.dim(1), heads = q.dim(2), d = q.dim(3);
  const int64_t capacity = k.dim(1), kv_heads = k.dim(2), group = heads / kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const float *qp = q.data<float>(), *kp = k.data<float>(), *vp = v.data<float>();
  const int32_t* valid = key_valid.data<int32_t>();
  auto query_at = [&](int64_t b, int64_t t, int64_t h) { return ((b * t_count + t) * heads + h) * d; };
  auto key_at = [&](int64_t b, int64_t s, int64_t kh) { return ((b * capacity + s) * kv_heads + kh) * d; };
  std::vector<float> scores(length), p16(length), dp(length), ds16(length);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t t = 0; t < t_count; ++t) {
        const int64_t kh = h / group, visible = length - t_count + t + 1, qa = query_at(b, t, h);
        // S = scale * q . k (bf16 operands, fp32 sums), P = masked softmax, rounded.
        float max_score = -INFINITY;
        for (int64_t s = 0; s < visible; ++s) {
          if (!valid[b * capacity + s]) continue;
          float dot = 0;
          for (int64_t i = 0; i < d; ++i) dot += bf16_rounded(qp[qa + i]) * bf16_rounded(kp[key_at(b, s, kh) + i]);
          scores[s] = scale * dot;
          max_score = std::fmax(max_score, scores[s]);
        }
        float sum = 0;
        for (int64_t s = 0; s < visible; ++s) {
          const bool seen = valid[b * capacity + s] && max_score != -INFINITY;
          p16[s] = seen ? std::exp(scores[s] - max_score) : 0.f;
          sum += p16[s];
        }
        for (int64_t s = 0; s < visible; ++s) p16[s] = sum > 0 ? bf16_rounded(p16[s] / sum) : 0.f;
        if (!dout) {
          for (int64_t i = 0; i < d; ++i) {
            float acc = 0;
            for (int64_t s = 0; s < visible; ++s) acc += p16[s] * bf16_rounded(vp[key_at(b, s, kh) + i]);
            out->data<float>()[qa + i] = acc;
          }
          continue;
        }
        // dP = dout . v, dS = scale * P (dP - sum P dP), rounded; then the three products.
        const float* g = dout->data<float>() + qa;
        float weighted = 0;
        for (int64_t s = 0; s < visible; ++s) {
          float acc = 0;
          for (int64_t i = 0; i < d; ++i) acc += bf16_rounded(g[i]) * bf16_rounded(vp[key_at(b, s, kh) + i]);
          dp[s] = acc;
          weighted += p16[s] * acc;
        }
        for (int64_t s = 0; s < visible; ++s) ds16[s] = bf16_rounded(scale * p16[s] * (dp[s] - weighted));
        for (int64_t i = 0; i < d; ++i) {
          float acc = 0;
          for (int64_t s = 0; s < visible; ++s) acc += ds16[s] * bf16_rounded(kp[key_at(b, s, kh) + i]);
          dq->data<float>()[qa + i] = acc;
        }
        for (int64_t s = 0; s < visible; ++s)
          for (int64_t i = 0; i < d; ++i) {
            dk->data<float>()[key_at(b, s, kh) + i] += ds16[s] * bf16_rounded(qp[qa + i]);
            dv->data<float>()[key_at(b, s, kh) + i] += p16[s] * bf16_rounded(g[i]);
          }
      }
}

// The CUDA backend's roundings (tests/cuda_rounding_cpu_ops.h) with attention's backward,
// or both its passes, through the bf16 products.
class Bf16ProductAttentionRoundingCpuOps : public CudaRoundingCpuOps {
 public:
  explicit Bf16ProductAttentionRoundingCpuOps(bool forward_too) : forward_too_(forward_too) {}

  void attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length, const Tensor& key_valid,
                 Tensor& out) override {
    if (!forward_too_) return CudaRoundingCpuOps::attention(q, k, v, length, key_valid, out);
    bf16_product_attention(q, k, v, length, key_valid, nullptr, &out, nullptr, nullptr, nullptr);
  }
  void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, int64_t length,
                          const Tensor& key_valid, Tensor& dq, Tensor& dk, Tensor& dv) override {
    bf16_product_attention(q, k, v, length, key_valid, &dout, nullptr, &dq, &dk, &dv);
  }

 private:
  bool forward_too_;
};

}  // namespace xcomp::test
