// The optimizer's arithmetic on the device, so a training step keeps its trainable
// tensors, gradients and AdamW moments on the GPU: the gradient norm (per-chunk sums in
// double, added in order on the host as the CPU backend adds its blocks), clipping's
// scaling, and the AdamW update (cuda_adamw.cu).
#include <glog/logging.h>

#include <vector>

#include "model/cuda/block_reduce.cuh"
#include "model/cuda/cuda_adamw.h"
#include "model/cuda/cuda_backend.h"
#include "model/cuda/cuda_check.h"

namespace xcomp::cuda {

namespace {

constexpr int kThreads = 256;
// Elements per partial sum: the CPU backend's block size.
constexpr int64_t kChunk = int64_t{1} << 16;

// Block b writes the sum of squares of elements [b * kChunk, (b + 1) * kChunk), in double.
__global__ void chunk_sum_of_squares_kernel(const float* x, int64_t n, double* partial) {
  __shared__ double scratch[32];
  const int64_t begin = blockIdx.x * kChunk, end = min(n, begin + kChunk);
  double sum = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const double v = x[i];
    sum += v * v;
  }
  sum = block_sum(sum, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

__global__ void scale_kernel(float* x, float factor, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    x[i] *= factor;
}

}  // namespace

double CudaOps::sum_of_squares(const Tensor& x) { return sums_of_squares({x}).front(); }

// Every tensor's chunk sums into one buffer, one copy to the host and one wait; each
// tensor's chunks then added in order, as one tensor's alone would be.
std::vector<double> CudaOps::sums_of_squares(const std::vector<Tensor>& xs) {
  const char* op = "sum_of_squares";
  std::vector<int64_t> first_chunk;  // of each tensor; the last entry is the total
  int64_t chunks = 0;
  for (const Tensor& x : xs) {
    require_on_device(op, {&x});
    require_dtype(op, "x", x, DType::F32);
    first_chunk.push_back(chunks);
    chunks += (x.numel() + kChunk - 1) / kChunk;
  }
  first_chunk.push_back(chunks);
  std::vector<double> sums(xs.size(), 0.0);
  if (chunks == 0) return sums;
  CHECK_LT(chunks, int64_t{1} << 31) << op << ": " << chunks << " chunks";
  const std::shared_ptr<void> partial = allocator_->allocate(static_cast<size_t>(chunks) * sizeof(double));
  double* const partials = static_cast<double*>(partial.get());
  for (size_t t = 0; t < xs.size(); ++t) {
    const int64_t count = first_chunk[t + 1] - first_chunk[t];
    if (count == 0) continue;
    chunk_sum_of_squares_kernel<<<static_cast<unsigned>(count), kThreads, 0, stream_>>>(
        static_cast<const float*>(xs[t].raw()), xs[t].numel(), partials + first_chunk[t]);
    XCOMP_CUDA_CHECK(cudaGetLastError());
  }
  std::vector<double> host(static_cast<size_t>(chunks));
  XCOMP_CUDA_CHECK(cudaMemcpyAsync(host.data(), partials, host.size() * sizeof(double), cudaMemcpyDeviceToHost,
                                   stream_));
  XCOMP_CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (size_t t = 0; t < xs.size(); ++t)
    for (int64_t c = first_chunk[t]; c < first_chunk[t + 1]; ++c) sums[t] += host[static_cast<size_t>(c)];
  return sums;
}

void CudaOps::scale(Tensor& x, float factor) {
  const char* op = "scale";
  require_on_device(op, {&x});
  require_dtype(op, "x", x, DType::F32);
  const int64_t n = x.numel();
  if (n == 0) return;
  scale_kernel<<<elementwise_blocks(n, kThreads), kThreads, 0, stream_>>>(static_cast<float*>(x.raw()), factor, n);
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

void CudaOps::adamw_update(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                           const AdamWStepScalars& scalars) {
  const char* op = "adamw_update";
  require_on_device(op, {&param, &grad, &exp_avg, &exp_avg_sq});
  require_dtype(op, "param", param, DType::F32);
  require_dtype(op, "grad", grad, DType::F32);
  require_dtype(op, "exp_avg", exp_avg, DType::F32);
  require_dtype(op, "exp_avg_sq", exp_avg_sq, DType::F32);
  const int64_t n = param.numel();
  CHECK(grad.numel() == n && exp_avg.numel() == n && exp_avg_sq.numel() == n)
      << op << ": param " << shape_str(param.shape()) << ", grad " << shape_str(grad.shape());
  cuda::adamw_update(static_cast<float*>(param.raw()), static_cast<float*>(exp_avg.raw()),
                     static_cast<float*>(exp_avg_sq.raw()), static_cast<const float*>(grad.raw()), n, scalars,
                     stream_);
}

}  // namespace xcomp::cuda
