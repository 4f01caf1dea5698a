// Softmax cross-entropy of the CUDA backend: one block per row of logits (the vocabulary,
// up to ~128k, is strided over the block). Like the CPU backend, the max is taken in
// fp32 and the sum of exponentials and the log-softmax in fp64. The gradients are written
// in fp32, or in bf16 where only a bf16 product reads them (the LM head's input gradient):
// the copy that product made rounded the same fp32 values the same way, through twice the
// traffic (about 0.5 GB a chunk of rows at a 128k vocabulary).
#include <cuda_bf16.h>
#include <glog/logging.h>

#include "model/cuda/block_reduce.cuh"
#include "model/cuda/cuda_backend.h"
#include "model/cuda/cuda_check.h"
#include "model/cuda/float_elements.cuh"

namespace xcomp::cuda {

namespace {

constexpr int kThreads = 512;

template <class Grad>
__global__ void cross_entropy_kernel(const float* logits, const int32_t* targets, const float* weights, int64_t vocab,
                                     float* losses, Grad* dlogits) {
  __shared__ float float_scratch[32];
  __shared__ double double_scratch[32];
  const int64_t r = blockIdx.x;
  const float* row = logits + r * vocab;
  Grad* grad = dlogits + r * vocab;
  const int32_t target = targets[r];
  const float weight = weights[r];
  if (target < 0 || target >= vocab) {
    // No target: no loss and no gradient. A target past the vocabulary is a bug upstream
    // (the CPU backend CHECKs it): the loss is NaN so it cannot go unnoticed.
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) store_element(grad, i, 0.f);
    if (threadIdx.x == 0) losses[r] = target < 0 ? 0.f : __int_as_float(0x7fc00000);
    return;
  }
  float local_max = -INFINITY;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) local_max = fmaxf(local_max, row[i]);
  const float max_logit = block_max(local_max, float_scratch, -INFINITY);
  double local_total = 0;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) local_total += exp(static_cast<double>(row[i]) - max_logit);
  const double total = block_sum(local_total, double_scratch);
  const double log_total = log(total) + max_logit;
  if (threadIdx.x == 0) losses[r] = static_cast<float>(weight * (log_total - row[target]));
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    float g = static_cast<float>(weight * exp(static_cast<double>(row[i]) - log_total));
    if (i == target) g -= weight;
    store_element(grad, i, g);
  }
}

}  // namespace

void CudaOps::cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& weights, Tensor& losses,
                            Tensor& dlogits) {
  const char* op = "cross_entropy";
  require_on_device(op, {&logits, &targets, &weights, &losses, &dlogits});
  require_dtype(op, "logits", logits, DType::F32);
  require_dtype(op, "targets", targets, DType::I32);
  require_dtype(op, "weights", weights, DType::F32);
  require_dtype(op, "losses", losses, DType::F32);
  CHECK(dlogits.dtype() == DType::F32 || dlogits.dtype() == product_dtype())
      << op << ": dlogits is " << dtype_name(dlogits.dtype()) << ", expected F32 or " << dtype_name(product_dtype());
  const int64_t m = targets.numel();
  CHECK_GT(m, 0) << op << ": no rows";
  CHECK_LT(m, int64_t{1} << 31) << op << ": too many rows";
  const int64_t vocab = logits.numel() / m;
  CHECK_EQ(logits.numel(), m * vocab) << op << ": logits " << shape_str(logits.shape()) << " vs " << m << " targets";
  CHECK_EQ(weights.numel(), m) << op << ": weights " << shape_str(weights.shape());
  CHECK_EQ(losses.numel(), m) << op << ": losses " << shape_str(losses.shape());
  CHECK_EQ(dlogits.numel(), logits.numel()) << op << ": dlogits " << shape_str(dlogits.shape());
  const auto launch = [&](auto* grad) {
    cross_entropy_kernel<<<static_cast<unsigned>(m), kThreads, 0, stream_>>>(
        static_cast<const float*>(logits.raw()), static_cast<const int32_t*>(targets.raw()),
        static_cast<const float*>(weights.raw()), vocab, static_cast<float*>(losses.raw()), grad);
  };
  if (dlogits.dtype() == DType::BF16)
    launch(static_cast<__nv_bfloat16*>(dlogits.raw()));
  else
    launch(static_cast<float*>(dlogits.raw()));
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace xcomp::cuda
