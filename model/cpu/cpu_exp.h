// exp(x) for the CPU backend's hot loops (softmax, SwiGLU, cross-entropy): plain
// arithmetic that the compiler vectorises inside `#pragma omp simd` loops, where a call
// to std::exp stays a scalar libm call. Cephes' expf scheme (x = n ln2 + r, a degree-6
// polynomial in r, 2^n from the exponent bits): relative error ~1e-7, like expf. Returns
// exactly 0 below -87.3 (so exp(-inf) = 0, as masks need) and saturates at exp(88).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace xcomp {

inline float vector_exp(float x) {
  constexpr float kLow = -87.3365447505531f, kHigh = 88.0f;
  const float xc = std::min(std::max(x, kLow), kHigh);
  const float n = std::floor(xc * 1.44269504088896341f + 0.5f);
  const float r = xc - n * 0.693359375f + n * 2.12194440e-4f;  // ln2 split in two for exactness
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < kLow ? 0.0f : p * scale;
}

}  // namespace xcomp
