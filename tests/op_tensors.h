// Moving data between Tensors and the double vectors of tests/op_reference.h.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "model/tensor.h"
#include "tests/op_reference.h"

namespace xcomp::test {

// A tensor of smooth, sign-varying values (deterministic per seed).
inline Tensor smooth_tensor(Shape shape, double seed, double amplitude = 1.5) {
  Tensor t = Tensor::empty(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(std::sin(seed + 0.731 * i) * amplitude);
  return t;
}

inline Tensor int_tensor(Shape shape, const std::vector<int32_t>& values) {
  Tensor t = Tensor::empty(std::move(shape), DType::I32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int32_t>()[i] = values.at(i);
  return t;
}

inline Vec to_vec(const Tensor& t) { return Vec(t.data<float>(), t.data<float>() + t.numel()); }
inline std::vector<int32_t> to_ints(const Tensor& t) {
  return std::vector<int32_t>(t.data<int32_t>(), t.data<int32_t>() + t.numel());
}

// max |got - want| / max(1, max |want|): relative to the scale of the values.
inline double scaled_error(const Tensor& got, const Vec& want) {
  double max_diff = 0, scale = 1;
  for (size_t i = 0; i < want.size(); ++i) {
    max_diff = std::max(max_diff, std::fabs(got.data<float>()[i] - want[i]));
    scale = std::max(scale, std::fabs(want[i]));
  }
  return max_diff / scale;
}

}  // namespace xcomp::test
