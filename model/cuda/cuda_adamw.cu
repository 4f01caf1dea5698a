#include "model/cuda/cuda_adamw.h"

#include "model/cuda/cuda_backend.h"
#include "model/cuda/cuda_check.h"

namespace xcomp::cuda {

namespace {

constexpr int kThreads = 256;

// One element per thread, grid-stride. Every operation is an explicitly rounded intrinsic
// (__fmul_rn, __fdiv_rn, ...) so nvcc cannot contract a product and a sum into one fma
// (-fmad=true is its default): the host compiles each as a separately rounded operation,
// and an fma where it has none would differ by an ulp. fmaf stands where the host calls
// std::fma. So with the same scalars both sides give the same bits.
__global__ void adamw_kernel(float* param, float* exp_avg, float* exp_avg_sq, const float* grad, int64_t n,
                             AdamWStepScalars s) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const float g = grad[i];
    const float p = __fmul_rn(param[i], s.decay_factor);
    const float m = fmaf(g, s.one_minus_beta1, __fmul_rn(exp_avg[i], s.beta1));
    const float v = fmaf(__fmul_rn(s.one_minus_beta2, g), g, __fmul_rn(exp_avg_sq[i], s.beta2));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), s.bias_correction2_sqrt), s.eps);
    param[i] = __fadd_rn(p, __fdiv_rn(__fmul_rn(-s.step_size, m), denom));
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
  }
}

}  // namespace

void adamw_update(float* param, float* exp_avg, float* exp_avg_sq, const float* grad, int64_t n,
                  const AdamWStepScalars& scalars, cudaStream_t stream) {
  CHECK_GE(n, 0) << "adamw_update: negative element count";
  if (n == 0) return;
  CHECK(param && exp_avg && exp_avg_sq && grad) << "adamw_update: null device pointer";
  adamw_kernel<<<elementwise_blocks(n, kThreads), kThreads, 0, stream>>>(param, exp_avg, exp_avg_sq, grad, n,
                                                                           scalars);
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace xcomp::cuda
