// The executor of the kernel bodies written for both a GPU and the CPU emulation of
// thread blocks (flash_attention_kernels.h, score_rows.h; tests/emulated_thread_block.h
// is the other side): one CUDA thread, its indices, barriers and warp shuffles.
#pragma once

#include <cstdint>

namespace xcomp::cuda {

struct DeviceThread {
  __device__ int thread() const { return static_cast<int>(threadIdx.x); }
  __device__ int lane() const { return static_cast<int>(threadIdx.x % 32); }
  __device__ int warp() const { return static_cast<int>(threadIdx.x / 32); }
  __device__ int64_t block_x() const { return blockIdx.x; }
  __device__ int64_t block_y() const { return blockIdx.y; }
  __device__ int64_t block_z() const { return blockIdx.z; }
  __device__ void sync() const { __syncthreads(); }
  __device__ void sync_warp() const { __syncwarp(); }
  __device__ float shuffle_xor(float value, int lane_mask) const {
    return __shfl_xor_sync(0xffffffffu, value, lane_mask);
  }
  __device__ double shuffle_xor(double value, int lane_mask) const {
    return __shfl_xor_sync(0xffffffffu, value, lane_mask);
  }
};

}  // namespace xcomp::cuda
