// RMSNorm's row kernels (rmsnorm.cu), written over an executor (as score_rows.h) so that
// the unit suite runs them in the CPU emulation of thread blocks
// (tests/emulated_thread_block.h). One block of kThreads threads per row; thread t owns
// elements t, t + kThreads, ... of it, sums their squares (and, backward, dy w x) in fp64
// in that order, and the block adds the threads' sums as block_reduce.cuh's block_sum
// does (a warp butterfly, the warps' sums through shared memory, a second butterfly).
//
// Two forms with the same arithmetic in the same order, so the same results to the bit:
//  - in registers (kPerThread elements a thread, rows of up to kThreads x kPerThread):
//    every load of the row is issued before any is used. Walking the row one load at a
//    time left RMSNorm at 1.5 TB/s and its backward at 2.4 TB/s of an H200's 4.8
//    (bench train --profile at LLaMA-3-8B's shape: 67 and 107 us a call, 0.025 s a step);
//  - looped: any width.
// Outputs leave through a store callable, store(i, value), so one body writes fp32 or
// bf16 rows.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#if defined(__CUDACC__)
#define XCOMP_RMSNORM_BODY_FN __device__ __forceinline__
#define XCOMP_RMSNORM_UNROLL _Pragma("unroll")
#else
#define XCOMP_RMSNORM_BODY_FN inline
#define XCOMP_RMSNORM_UNROLL
#endif

namespace xcomp::rmsnorm_rows {

constexpr int kThreads = 256;
constexpr int kScratch = 32;  // doubles of shared memory a block takes (one per warp)

// The elements a thread holds in registers for rows of `width`: 1, 2, 4, 8, 16 or 32, or 0
// past kThreads x 32 (8192; the looped form then). Host code.
inline int row_registers(int64_t width) {
  for (int per_thread = 1; per_thread <= 32; per_thread *= 2)
    if (width <= int64_t{kThreads} * per_thread) return per_thread;
  return 0;
}

// Calls f(std::integral_constant<int, P>{}) with P = row_registers(width), which must not
// be 0. Host code.
template <class F> void with_row_registers(int64_t width, F&& f) {
  switch (row_registers(width)) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 8: return f(std::integral_constant<int, 8>{});
    case 16: return f(std::integral_constant<int, 16>{});
    default: return f(std::integral_constant<int, 32>{});
  }
}

template <class Ex> XCOMP_RMSNORM_BODY_FN double warp_sum(const Ex& ex, double value) {
XCOMP_RMSNORM_UNROLL
  for (int offset = 16; offset > 0; offset /= 2) value += ex.shuffle_xor(value, offset);
  return value;
}

// The sum of every thread's `value`, for every thread; `scratch`: kScratch doubles of
// shared memory. Every thread of the block calls it.
template <class Ex> XCOMP_RMSNORM_BODY_FN double block_sum(const Ex& ex, double value, double* scratch) {
  const int lane = ex.lane(), warp = ex.warp(), warps = kThreads / 32;
  value = warp_sum(ex, value);
  ex.sync();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = value;
  ex.sync();
  value = lane < warps ? scratch[lane] : 0.0;
  return warp_sum(ex, value);
}

// y[row, i] = w[i] * (x[row, i] * inv), inv = (mean of the row's squares + eps)^(-1/2),
// through store(row * width + i, value). Block `ex.block_x()` is the row.
template <int kPerThread, class Ex, class Store>
XCOMP_RMSNORM_BODY_FN void forward_row_in_registers(const Ex& ex, const float* x, const float* w, float eps,
                                                    int64_t width, double* scratch, const Store& store) {
  const int64_t base = ex.block_x() * width;
  const int thread = ex.thread();
  float value[kPerThread];
XCOMP_RMSNORM_UNROLL
  for (int e = 0; e < kPerThread; ++e) {
    const int64_t i = thread + int64_t{kThreads} * e;
    value[e] = i < width ? x[base + i] : 0.f;
  }
  double sum = 0;
XCOMP_RMSNORM_UNROLL
  for (int e = 0; e < kPerThread; ++e)
    if (thread + int64_t{kThreads} * e < width) sum += static_cast<double>(value[e]) * value[e];
  sum = block_sum(ex, sum, scratch);
  const float inv = static_cast<float>(1.0 / sqrt(sum / width + eps));
XCOMP_RMSNORM_UNROLL
  for (int e = 0; e < kPerThread; ++e) {
    const int64_t i = thread + int64_t{kThreads} * e;
    if (i < width) store(base + i, w[i] * (value[e] * inv));
  }
}

template <class Ex, class Store>
XCOMP_RMSNORM_BODY_FN void forward_row_looped(const Ex& ex, const float* x, const float* w, float eps, int64_t width,
                                              double* scratch, const Store& store) {
  const int64_t base = ex.block_x() * width;
  double sum = 0;
  for (int64_t i = ex.thread(); i < width; i += kThreads) sum += static_cast<double>(x[base + i]) * x[base + i];
  sum = block_sum(ex, sum, scratch);
  const float inv = static_cast<float>(1.0 / sqrt(sum / width + eps));
  for (int64_t i = ex.thread(); i < width; i += kThreads) store(base + i, w[i] * (x[base + i] * inv));
}

// y = w * x * inv with inv = (mean(x^2) + eps)^(-1/2):
// dx = inv * w * dy - inv^3 * x * dot(dy * w, x) / width, added to dx or written.
template <int kPerThread, class Ex>
XCOMP_RMSNORM_BODY_FN void backward_row_in_registers(const Ex& ex, const float* dy, const float* x, const float* w,
                                                     float eps, int64_t width, bool accumulate, float* dx,
                                                     double* scratch) {
  const int64_t base = ex.block_x() * width;
  const int thread = ex.thread();
  float x_value[kPerThread], dy_value[kPerThread], w_value[kPerThread], dx_value[kPerThread];
XCOMP_RMSNORM_UNROLL
  for (int e = 0; e < kPerThread; ++e) {
    const int64_t i = thread + int64_t{kThreads} * e;
    const bool in = i < width;
    x_value[e] = in ? x[base + i] : 0.f;
    dy_value[e] = in ? dy[base + i] : 0.f;
    w_value[e] = in ? w[i] : 0.f;
    dx_value[e] = in && accumulate ? dx[base + i] : 0.f;
  }
  double sum_sq = 0, dot = 0;
XCOMP_RMSNORM_UNROLL
  for (int e = 0; e < kPerThread; ++e) {
    if (thread + int64_t{kThreads} * e >= width) continue;
    sum_sq += static_cast<double>(x_value[e]) * x_value[e];
    dot += static_cast<double>(dy_value[e]) * w_value[e] * x_value[e];
  }
  sum_sq = block_sum(ex, sum_sq, scratch);
  dot = block_sum(ex, dot, scratch);
  const double inv = 1.0 / sqrt(sum_sq / width + eps);
  const float a = static_cast<float>(inv);
  const float b = static_cast<float>(inv * inv * inv * dot / width);
XCOMP_RMSNORM_UNROLL
  for (int e = 0; e < kPerThread; ++e) {
    const int64_t i = thread + int64_t{kThreads} * e;
    if (i >= width) continue;
    const float g = a * w_value[e] * dy_value[e] - b * x_value[e];
    dx[base + i] = accumulate ? dx_value[e] + g : g;
  }
}

template <class Ex>
XCOMP_RMSNORM_BODY_FN void backward_row_looped(const Ex& ex, const float* dy, const float* x, const float* w,
                                               float eps, int64_t width, bool accumulate, float* dx,
                                               double* scratch) {
  const int64_t base = ex.block_x() * width;
  double sum_sq = 0, dot = 0;
  for (int64_t i = ex.thread(); i < width; i += kThreads) {
    const float xi = x[base + i];
    sum_sq += static_cast<double>(xi) * xi;
    dot += static_cast<double>(dy[base + i]) * w[i] * xi;
  }
  sum_sq = block_sum(ex, sum_sq, scratch);
  dot = block_sum(ex, dot, scratch);
  const double inv = 1.0 / sqrt(sum_sq / width + eps);
  const float a = static_cast<float>(inv);
  const float b = static_cast<float>(inv * inv * inv * dot / width);
  for (int64_t i = ex.thread(); i < width; i += kThreads) {
    const float g = a * w[i] * dy[base + i] - b * x[base + i];
    dx[base + i] = accumulate ? dx[base + i] + g : g;
  }
}

}  // namespace xcomp::rmsnorm_rows
