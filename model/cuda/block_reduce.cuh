// Block-wide reductions for kernels that give one row to one thread block. Every thread
// of the block must call them (they synchronise), and every thread gets the result.
#pragma once

#include <cuda_runtime.h>

namespace xcomp::cuda {

constexpr unsigned kFullWarp = 0xffffffffu;

template <class T> __device__ T warp_sum(T value) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(kFullWarp, value, offset);
  return value;
}

template <class T> __device__ T warp_max(T value) {
  for (int offset = 16; offset > 0; offset /= 2) value = max(value, __shfl_xor_sync(kFullWarp, value, offset));
  return value;
}

// `scratch` holds at least 32 values; blockDim.x is a multiple of 32 (at most 1024).
template <class T> __device__ T block_sum(T value, T* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  value = warp_sum(value);
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  value = lane < warps ? scratch[lane] : T(0);
  return warp_sum(value);
}

template <class T> __device__ T block_max(T value, T* scratch, T lowest) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  value = warp_max(value);
  __syncthreads();
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  value = lane < warps ? scratch[lane] : lowest;
  return warp_max(value);
}

}  // namespace xcomp::cuda
