// Host tensors the op tests build: uniform random values, and the same values rounded to
// bf16 (as F32, or as a BF16 tensor: what a backend's bf16 storage holds).
#pragma once

#include <random>

#include "model/half.h"
#include "model/tensor.h"

namespace xcomp::test {

// Values uniform in [-amplitude, amplitude), the same for the same seed.
inline Tensor random_tensor(Shape shape, uint32_t seed, float amplitude = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-amplitude, amplitude);
  Tensor t = Tensor::empty(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(gen);
  return t;
}

// The values a bf16 copy of t holds, as F32.
inline Tensor bf16_rounded(const Tensor& t) {
  Tensor r = t.clone();
  for (int64_t i = 0; i < r.numel(); ++i) r.data<float>()[i] = bf16_to_f32(f32_to_bf16(r.data<float>()[i]));
  return r;
}

// A BF16 tensor of t's values rounded (what Ops::product_dtype activations hold).
inline Tensor to_bf16(const Tensor& t) {
  Tensor out = Tensor::empty(t.shape(), DType::BF16);
  for (int64_t i = 0; i < t.numel(); ++i) out.data<uint16_t>()[i] = f32_to_bf16(t.data<float>()[i]);
  return out;
}

}  // namespace xcomp::test
