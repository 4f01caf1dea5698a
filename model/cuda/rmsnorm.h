// RMSNorm over rows on the device, fp32 in and fp32 (or bf16) out, with the row sums in fp64 as the CPU
// backend computes them (so the two agree to rounding). CudaOps::rmsnorm and
// rmsnorm_backward launch these on their stream.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace xcomp::cuda {

// y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w, device pointers.
void rmsnorm_forward(const float* x, const float* w, float eps, int64_t rows, int64_t width, float* y,
                     cudaStream_t stream = nullptr);
// The same, y rounded to bf16 (for a bf16 product that reads it: Ops::product_dtype).
void rmsnorm_forward_bf16(const float* x, const float* w, float eps, int64_t rows, int64_t width, __nv_bfloat16* y,
                          cudaStream_t stream);

// The same values into a float y and a bf16 y16, in one pass over x.
void rmsnorm_forward_f32_and_bf16(const float* x, const float* w, float eps, int64_t rows, int64_t width, float* y,
                                  __nv_bfloat16* y16, cudaStream_t stream);

// dx[r, :] (+)= the gradient of rmsnorm for output gradient dy[r, :] (w frozen).
void rmsnorm_backward(const float* dy, const float* x, const float* w, float eps, int64_t rows, int64_t width,
                      bool accumulate, float* dx, cudaStream_t stream);

// Host-memory convenience for tests: copies in, runs, copies out, synchronises.
void rmsnorm_forward_host(const float* x, const float* w, float eps, int64_t rows, int64_t width, float* y);

}  // namespace xcomp::cuda
