// Rounding to TF32 on the host, for the CPU emulations of the GPU's arithmetic.
#pragma once

#include <cstdint>
#include <cstring>

namespace xcomp::test {

// How a value halfway between two TF32 values rounds: away from zero, as
// __float_to_tf32 (cvt.rna) does in our flash kernels, or to even, the rounding the CPU
// emulation of cuBLAS's TF32 products has always used (cuBLAS does not document its own).
enum class Tf32Ties { kAwayFromZero, kToEven };

// x rounded to TF32: the nearest float with 10 mantissa bits.
inline float tf32_rounded(float x, Tf32Ties ties) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7f800000u) == 0x7f800000u) return x;  // inf, NaN
  const uint32_t half = ties == Tf32Ties::kAwayFromZero ? 0x1000u : 0xfffu + ((bits >> 13) & 1u);
  bits = (bits + half) & ~0x1fffu;  // the magnitude, rounded
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

}  // namespace xcomp::test
