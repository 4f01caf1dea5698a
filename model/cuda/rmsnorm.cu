#include "model/cuda/rmsnorm.h"

#include "model/cuda/block_reduce.cuh"
#include "model/cuda/cuda_backend.h"
#include "model/cuda/cuda_check.h"

namespace xcomp::cuda {

namespace {
constexpr int kThreads = 256;

__device__ void store(float* p, int64_t i, float v) { p[i] = v; }
__device__ void store(__nv_bfloat16* p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

// One block per row: strided fp64 sums, a block reduction, then the elementwise pass.
template <class Out>
__global__ void rmsnorm_kernel(const float* x, const float* w, float eps, int64_t width, Out* y) {
  __shared__ double scratch[32];
  const float* xr = x + blockIdx.x * width;
  Out* yr = y + blockIdx.x * width;
  double sum = 0;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) sum += static_cast<double>(xr[i]) * xr[i];
  sum = block_sum(sum, scratch);
  const float inv = static_cast<float>(1.0 / sqrt(sum / width + eps));
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) store(yr, i, w[i] * (xr[i] * inv));
}

template <class Out>
void launch_rmsnorm(const float* x, const float* w, float eps, int64_t rows, int64_t width, Out* y,
                    cudaStream_t stream) {
  if (rows == 0) return;
  CHECK_LT(rows, int64_t{1} << 31);
  rmsnorm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, w, eps, width, y);
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

// y = w * x * inv with inv = (mean(x^2) + eps)^(-1/2):
// dx = inv * w * dy - inv^3 * x * dot(dy * w, x) / width.
__global__ void rmsnorm_backward_kernel(const float* dy, const float* x, const float* w, float eps, int64_t width,
                                        bool accumulate, float* dx) {
  __shared__ double scratch[32];
  const int64_t base = blockIdx.x * width;
  double sum_sq = 0, dot = 0;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    const float xi = x[base + i];
    sum_sq += static_cast<double>(xi) * xi;
    dot += static_cast<double>(dy[base + i]) * w[i] * xi;
  }
  sum_sq = block_sum(sum_sq, scratch);
  dot = block_sum(dot, scratch);
  const double inv = 1.0 / sqrt(sum_sq / width + eps);
  const float a = static_cast<float>(inv);
  const float b = static_cast<float>(inv * inv * inv * dot / width);
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    const float g = a * w[i] * dy[base + i] - b * x[base + i];
    dx[base + i] = accumulate ? dx[base + i] + g : g;
  }
}
}  // namespace

void rmsnorm_forward(const float* x, const float* w, float eps, int64_t rows, int64_t width, float* y,
                     cudaStream_t stream) {
  launch_rmsnorm(x, w, eps, rows, width, y, stream);
}

void rmsnorm_forward_bf16(const float* x, const float* w, float eps, int64_t rows, int64_t width, __nv_bfloat16* y,
                          cudaStream_t stream) {
  launch_rmsnorm(x, w, eps, rows, width, y, stream);
}

void rmsnorm_backward(const float* dy, const float* x, const float* w, float eps, int64_t rows, int64_t width,
                      bool accumulate, float* dx, cudaStream_t stream) {
  if (rows == 0) return;
  CHECK_LT(rows, int64_t{1} << 31);
  rmsnorm_backward_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(dy, x, w, eps, width, accumulate,
                                                                                  dx);
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

namespace {
void check_rmsnorm_args(const char* op, const Tensor& x, const Tensor& w, const Tensor& out) {
  require_dtype(op, "x", x, DType::F32);
  require_dtype(op, "w", w, DType::F32);
  CHECK(w.numel() > 0 && x.numel() % w.numel() == 0)
      << op << ": x " << shape_str(x.shape()) << " vs w " << shape_str(w.shape());
  CHECK_EQ(out.numel(), x.numel()) << op << ": output " << shape_str(out.shape());
}
}  // namespace

void CudaOps::rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& y) {
  require_on_device("rmsnorm", {&x, &w, &y});
  check_rmsnorm_args("rmsnorm", x, w, y);
  const int64_t width = w.numel();
  const auto* xs = static_cast<const float*>(x.raw());
  const auto* ws = static_cast<const float*>(w.raw());
  if (y.dtype() == DType::BF16) {
    rmsnorm_forward_bf16(xs, ws, eps, x.numel() / width, width, static_cast<__nv_bfloat16*>(y.raw()), stream_);
    return;
  }
  require_dtype("rmsnorm", "output (F32, or BF16 for a product)", y, DType::F32);
  rmsnorm_forward(xs, ws, eps, x.numel() / width, width, static_cast<float*>(y.raw()), stream_);
}

void CudaOps::rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, float eps, Tensor& dx,
                               bool accumulate) {
  require_on_device("rmsnorm_backward", {&dy, &x, &w, &dx});
  check_rmsnorm_args("rmsnorm_backward", x, w, dx);
  require_dtype("rmsnorm_backward", "dx", dx, DType::F32);
  require_dtype("rmsnorm_backward", "dy", dy, DType::F32);
  CHECK_EQ(dy.numel(), x.numel()) << "rmsnorm_backward: dy " << shape_str(dy.shape());
  const int64_t width = w.numel();
  cuda::rmsnorm_backward(static_cast<const float*>(dy.raw()), static_cast<const float*>(x.raw()),
                         static_cast<const float*>(w.raw()), eps, x.numel() / width, width, accumulate,
                         static_cast<float*>(dx.raw()), stream_);
}

}  // namespace xcomp::cuda
