#include "model/cuda/rmsnorm.h"

#include "model/cuda/cuda_check.h"

namespace xcomp::cuda {

namespace {
constexpr int kThreads = 256;

// One block per row: a strided sum of squares, a shared-memory tree reduction, then scale.
__global__ void rmsnorm_kernel(const float* x, const float* w, float eps, int64_t width, float* y) {
  __shared__ float partial[kThreads];
  const float* xr = x + blockIdx.x * width;
  float* yr = y + blockIdx.x * width;
  float sum = 0.f;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) sum += xr[i] * xr[i];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  const float inv = rsqrtf(partial[0] / static_cast<float>(width) + eps);
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) yr[i] = w[i] * (xr[i] * inv);
}
}  // namespace

void rmsnorm_forward(const float* x, const float* w, float eps, int64_t rows, int64_t width, float* y) {
  if (rows == 0) return;
  rmsnorm_kernel<<<static_cast<unsigned>(rows), kThreads>>>(x, w, eps, width, y);
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

void rmsnorm_forward_host(const float* x, const float* w, float eps, int64_t rows, int64_t width, float* y) {
  float *dx = nullptr, *dw = nullptr, *dy = nullptr;
  const size_t row_bytes = static_cast<size_t>(rows * width) * sizeof(float);
  XCOMP_CUDA_CHECK(cudaMalloc(&dx, row_bytes));
  XCOMP_CUDA_CHECK(cudaMalloc(&dy, row_bytes));
  XCOMP_CUDA_CHECK(cudaMalloc(&dw, width * sizeof(float)));
  XCOMP_CUDA_CHECK(cudaMemcpy(dx, x, row_bytes, cudaMemcpyHostToDevice));
  XCOMP_CUDA_CHECK(cudaMemcpy(dw, w, width * sizeof(float), cudaMemcpyHostToDevice));
  rmsnorm_forward(dx, dw, eps, rows, width, dy);
  XCOMP_CUDA_CHECK(cudaDeviceSynchronize());
  XCOMP_CUDA_CHECK(cudaMemcpy(y, dy, row_bytes, cudaMemcpyDeviceToHost));
  XCOMP_CUDA_CHECK(cudaFree(dx));
  XCOMP_CUDA_CHECK(cudaFree(dy));
  XCOMP_CUDA_CHECK(cudaFree(dw));
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

}  // namespace xcomp::cuda
