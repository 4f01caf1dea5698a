#include "trainer/grad_clip.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>

namespace xcomp {

namespace {

// Sum of squares of one tensor, in double. Fixed-size blocks are summed in parallel and
// then added in order, so the result does not depend on the thread count or on how
// OpenMP combines a reduction: a resumed run clips exactly as an uninterrupted one.
double sum_of_squares(const Tensor& t) {
  CHECK(t.defined() && t.dtype() == DType::F32) << "gradient clipping takes F32 gradients";
  const float* x = t.data<float>();
  const int64_t n = t.numel();
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

void scale(Tensor& t, float factor) {
  float* x = t.data<float>();
  const int64_t n = t.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] *= factor;
}

}  // namespace

double global_grad_norm(const std::vector<Tensor>& gradients) {
  double total = 0.0;
  for (const Tensor& g : gradients) total += sum_of_squares(g);
  return std::sqrt(total);
}

GradClipResult clip_grad_norm(std::vector<Tensor>& gradients, double max_norm) {
  CHECK_GE(max_norm, 0.0);
  GradClipResult result;
  result.norm = global_grad_norm(gradients);
  result.finite = std::isfinite(result.norm);
  if (!result.finite || max_norm == 0.0) return result;
  // torch's formula, epsilon included, so clipped gradients match it.
  const double coefficient = max_norm / (result.norm + 1e-6);
  if (coefficient >= 1.0) return result;
  for (Tensor& g : gradients) scale(g, static_cast<float>(coefficient));
  result.clipped = true;
  return result;
}

}  // namespace xcomp
