// The first kernel of the CUDA backend (the full op set arrives with the CUDA issue):
// RMSNorm over rows, fp32 in and out, fp32 accumulation. Kept real and tested against
// the CPU backend so the CUDA build plumbing is exercised end to end.
#pragma once

#include <cstdint>

namespace xcomp::cuda {

// y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w, device pointers.
void rmsnorm_forward(const float* x, const float* w, float eps, int64_t rows, int64_t width, float* y);

// Host-memory convenience for tests: copies in, runs, copies out, synchronises.
void rmsnorm_forward_host(const float* x, const float* w, float eps, int64_t rows, int64_t width, float* y);

// Number of CUDA devices visible (0 when the driver or a device is missing).
int device_count();

}  // namespace xcomp::cuda
