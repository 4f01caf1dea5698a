// The elements of an fp32 or bf16 tensor as floats, for kernels that compute in fp32 on
// either storage (bf16 written rounded to nearest even): one at a time, or eight
// consecutive ones moved in 16-byte accesses (one for bf16, two for fp32). Element-wise
// kernels over bf16 tensors that read and wrote two bytes a thread at a time ran well
// below the memory's rate. For packs the caller checks that every pointer is 16-byte
// aligned (packed_elements) and passes element indices that are multiples of kPack,
// covering any remainder one element a thread.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <initializer_list>

namespace xcomp::cuda {

__device__ inline float load_element(const float* p, int64_t i) { return p[i]; }
__device__ inline float load_element(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ inline void store_element(float* p, int64_t i, float v) { p[i] = v; }
__device__ inline void store_element(__nv_bfloat16* p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

constexpr int kPack = 8;

// How many of n elements go in packs: all but the remainder past the last pack where
// every pointer is 16-byte aligned, else none.
inline int64_t packed_elements(int64_t n, std::initializer_list<const void*> pointers) {
  for (const void* p : pointers)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return 0;
  return n / kPack * kPack;
}

__device__ inline void load_pack(const float* p, int64_t i, float (&v)[kPack]) {
  const float4 a = *reinterpret_cast<const float4*>(p + i), b = *reinterpret_cast<const float4*>(p + i + 4);
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

// A bf16 value is the top half of the float it stands for; element 2j is the low half of
// 32-bit word j (little-endian), element 2j + 1 the high half.
__device__ inline void load_pack(const __nv_bfloat16* p, int64_t i, float (&v)[kPack]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p + i);
  const unsigned words[4] = {raw.x, raw.y, raw.z, raw.w};
  for (int j = 0; j < 4; ++j) {
    v[2 * j] = __uint_as_float(words[j] << 16);
    v[2 * j + 1] = __uint_as_float(words[j] & 0xffff0000u);
  }
}

__device__ inline void store_pack(float* p, int64_t i, const float (&v)[kPack]) {
  *reinterpret_cast<float4*>(p + i) = make_float4(v[0], v[1], v[2], v[3]);
  *reinterpret_cast<float4*>(p + i + 4) = make_float4(v[4], v[5], v[6], v[7]);
}

// Rounded to nearest even, as __float2bfloat16_rn rounds one element.
__device__ inline void store_pack(__nv_bfloat16* p, int64_t i, const float (&v)[kPack]) {
  unsigned words[4];
  for (int j = 0; j < 4; ++j)
    words[j] = static_cast<unsigned>(__bfloat16_as_ushort(__float2bfloat16_rn(v[2 * j]))) |
               static_cast<unsigned>(__bfloat16_as_ushort(__float2bfloat16_rn(v[2 * j + 1]))) << 16;
  *reinterpret_cast<uint4*>(p + i) = make_uint4(words[0], words[1], words[2], words[3]);
}

}  // namespace xcomp::cuda
