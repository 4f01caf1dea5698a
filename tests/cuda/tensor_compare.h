// Comparing a backend's result with a reference in the tests: one number per tensor, the
// largest difference relative to the reference's largest magnitude.
#pragma once

#include "model/tensor_difference.h"

namespace xcomp::test {

inline double relative_max_error(const Tensor& got, const Tensor& want) { return relative_max_difference(got, want); }

}  // namespace xcomp::test
