#include "model/tensor_difference.h"

#include <algorithm>
#include <cmath>

namespace xcomp {

double relative_max_difference(const Tensor& got, const Tensor& want) {
  if (got.numel() != want.numel()) return INFINITY;
  const float* a = got.data<float>();
  const float* b = want.data<float>();
  double max_diff = 0, max_ref = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double diff = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (std::isnan(diff)) return INFINITY;
    max_diff = std::max(max_diff, diff);
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(b[i])));
  }
  return max_ref > 0 ? max_diff / max_ref : max_diff;
}

double relative_norm_difference(const Tensor& got, const Tensor& want) {
  if (got.numel() != want.numel()) return INFINITY;
  const float* a = got.data<float>();
  const float* b = want.data<float>();
  double diff_squares = 0, ref_squares = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double diff = static_cast<double>(a[i]) - b[i];
    if (std::isnan(diff)) return INFINITY;
    diff_squares += diff * diff;
    ref_squares += static_cast<double>(b[i]) * b[i];
  }
  return ref_squares > 0 ? std::sqrt(diff_squares / ref_squares) : std::sqrt(diff_squares);
}

}  // namespace xcomp
