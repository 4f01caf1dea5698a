// Comparing a backend's result with a reference in the CUDA tests: one number per
// tensor, the largest difference relative to the reference's largest magnitude.
#pragma once

#include <algorithm>
#include <cmath>

#include "model/tensor.h"

namespace xcomp::test {

// max |got - want| / max |want| over two F32 host tensors with the same element count
// (the plain max |got - want| when want is all zeros; infinity on a size mismatch or NaN).
inline double relative_max_error(const Tensor& got, const Tensor& want) {
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

}  // namespace xcomp::test
