// Softmax cross-entropy of the CPU backend, the loss of every objective.
#include <glog/logging.h>

#include <algorithm>
#include <cmath>

#include "model/cpu/bf16_activations.h"
#include "model/cpu/cpu_exp.h"
#include "model/cpu/cpu_ops.h"
#include "model/cpu/parallel_work.h"

namespace xcomp {

void CpuOps::cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& weights, Tensor& losses,
                           Tensor& dlogits_out) {
  const int64_t m = targets.numel();
  CHECK_GT(m, 0);
  const int64_t vocab = logits.numel() / m;
  CHECK_EQ(logits.numel(), m * vocab);
  CHECK_EQ(weights.numel(), m);
  CHECK_EQ(losses.numel(), m);
  CHECK_EQ(dlogits_out.numel(), logits.numel());
  Tensor dlogits = f32_target(dlogits_out, /*keep_values=*/false);  // BF16 gradients: computed in fp32, rounded
  const float* z = logits.data<float>();
  const int32_t* target = targets.data<int32_t>();
  const float* weight = weights.data<float>();
  float* loss = losses.data<float>();
  float* dz = dlogits.data<float>();
#pragma omp parallel for schedule(static) if (parallel : worth_parallel(m * vocab))
  for (int64_t r = 0; r < m; ++r) {
    const float* row = z + r * vocab;
    float* grad = dz + r * vocab;
    if (target[r] < 0) {
      loss[r] = 0.0f;
      std::fill(grad, grad + vocab, 0.0f);
      continue;
    }
    CHECK_LT(target[r], vocab) << "target id outside the vocabulary";
    const float max_logit = *std::max_element(row, row + vocab);
    // exp in float (vectorised; each term within ~1e-7 relative), sums in double.
    double total = 0;
#pragma omp simd reduction(+ : total)
    for (int64_t i = 0; i < vocab; ++i) {
      const float e = vector_exp(row[i] - max_logit);
      grad[i] = e;
      total += e;
    }
    const double log_total = std::log(total) + max_logit;
    loss[r] = static_cast<float>(weight[r] * (log_total - row[target[r]]));
    const float scale = static_cast<float>(weight[r] / total);
#pragma omp simd
    for (int64_t i = 0; i < vocab; ++i) grad[i] *= scale;
    grad[target[r]] -= weight[r];
  }
  store_f32(dlogits, dlogits_out);
}

}  // namespace xcomp
