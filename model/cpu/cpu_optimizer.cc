// The optimizer's arithmetic on the CPU backend: gradient norms, clipping's scaling, and
// the AdamW update, on host F32 tensors.
#include <glog/logging.h>

#include <algorithm>
#include <vector>

#include "model/cpu/cpu_ops.h"

namespace xcomp {

double CpuOps::sum_of_squares(const Tensor& t) {
  CHECK(t.defined() && t.dtype() == DType::F32) << "sum_of_squares takes F32 tensors";
  const float* x = t.data<float>();
  const int64_t n = t.numel();
  // Fixed-size blocks summed in parallel, then added in order: the result does not
  // depend on the thread count or on how OpenMP would combine a reduction.
  constexpr int64_t kBlock = 1 << 16;
  std::vector<double> partial(static_cast<size_t>((n + kBlock - 1) / kBlock), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < static_cast<int64_t>(partial.size()); ++b) {
    double sum = 0.0;
    for (int64_t i = b * kBlock; i < std::min(n, (b + 1) * kBlock); ++i)
      sum += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    partial[static_cast<size_t>(b)] = sum;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

void CpuOps::scale(Tensor& t, float factor) {
  CHECK(t.dtype() == DType::F32);
  float* x = t.data<float>();
  const int64_t n = t.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] *= factor;
}

void CpuOps::adamw_update(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                          const AdamWStepScalars& scalars) {
  CHECK(param.dtype() == DType::F32 && grad.dtype() == DType::F32 && exp_avg.dtype() == DType::F32 &&
        exp_avg_sq.dtype() == DType::F32);
  const int64_t n = param.numel();
  CHECK(grad.numel() == n && exp_avg.numel() == n && exp_avg_sq.numel() == n);
  adamw_update_host(param.data<float>(), exp_avg.data<float>(), exp_avg_sq.data<float>(), grad.data<float>(), n,
                    scalars);
}

}  // namespace xcomp
