// Attention through the tensor-core flash kernels (flash_attention_kernels.h, where the
// algorithm is described): here they run as CUDA thread blocks, with nvcuda::wmma's
// fragments as the executor's products, TF32 (16x16x8, operands kept as floats and
// rounded at each fragment load) or bf16 (16x16x16, operands rounded once as the kernel
// writes them to shared memory: twice the tensor-core rate and half the shared-memory
// bytes of TF32). cuda_attention.cu dispatches here for AttentionKernels::kFlash (TF32)
// and kFlashBf16 with bf16 weights (with fp32 weights attention stays true fp32) and
// head_dim up to 128. Unlike the batched products they need no workspace for the score
// matrices and compute only the tiles the causal rule leaves.
#include <cuda_bf16.h>
#include <glog/logging.h>
#include <mma.h>

#include "model/cuda/cuda_backend.h"
#include "model/cuda/cuda_check.h"
#include "model/cuda/device_thread.cuh"
#include "model/cuda/dynamic_shared_memory.cuh"
#include "model/cuda/flash_attention_kernels.h"

namespace xcomp::cuda {

namespace {

namespace wmma = nvcuda::wmma;

// The executor of flash_attention_kernels.h on the GPU: one thread of a block, with
// float (TF32) or __nv_bfloat16 operands.
template <class Operand> struct DeviceExecutor;

template <> struct DeviceExecutor<float> : DeviceThread {
  using Operand = float;
  static constexpr int kStep = 8;
  using MatrixA = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
  using MatrixBRowMajor = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
  using MatrixBColMajor = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major>;
  using Accumulator = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;

  __device__ float to_operand(float x) const { return x; }
  // The hardware reads a TF32 operand's top 19 bits; rounding first (as cuBLAS's TF32
  // mode does) halves the error of truncating.
  template <class Fragment> __device__ void load(Fragment& f, const float* p, int ld) const {
    wmma::load_matrix_sync(f, p, static_cast<unsigned>(ld));
#pragma unroll
    for (int i = 0; i < f.num_elements; ++i) f.x[i] = wmma::__float_to_tf32(f.x[i]);
  }
  __device__ void fill(Accumulator& f, float value) const { wmma::fill_fragment(f, value); }
  template <class MatrixB> __device__ void mma(Accumulator& acc, const MatrixA& a, const MatrixB& b) const {
    wmma::mma_sync(acc, a, b, acc);
  }
  __device__ void store(float* p, const Accumulator& f, int ld) const {
    wmma::store_matrix_sync(p, f, static_cast<unsigned>(ld), wmma::mem_row_major);
  }
};

template <> struct DeviceExecutor<__nv_bfloat16> : DeviceThread {
  using Operand = __nv_bfloat16;
  static constexpr int kStep = 16;
  using MatrixA = wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major>;
  using MatrixBRowMajor = wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major>;
  using MatrixBColMajor = wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major>;
  using Accumulator = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

  __device__ __nv_bfloat16 to_operand(float x) const { return __float2bfloat16_rn(x); }
  template <class Fragment> __device__ void load(Fragment& f, const __nv_bfloat16* p, int ld) const {
    wmma::load_matrix_sync(f, p, static_cast<unsigned>(ld));
  }
  __device__ void fill(Accumulator& f, float value) const { wmma::fill_fragment(f, value); }
  template <class MatrixB> __device__ void mma(Accumulator& acc, const MatrixA& a, const MatrixB& b) const {
    wmma::mma_sync(acc, a, b, acc);
  }
  __device__ void store(float* p, const Accumulator& f, int ld) const {
    wmma::store_matrix_sync(p, f, static_cast<unsigned>(ld), wmma::mem_row_major);
  }
};

template <int Dp, class Operand>
__global__ void __launch_bounds__(flash::kThreads)
    flash_forward_kernel(flash::Dims s, const float* q, const float* k, const float* v, const int32_t* key_valid,
                         float* out) {
  extern __shared__ __align__(128) unsigned char flash_shared[];
  flash::forward_body<Dp>(DeviceExecutor<Operand>{}, s, q, k, v, key_valid, out, flash_shared);
}

template <int Dp, class Operand>
__global__ void __launch_bounds__(flash::kThreads)
    flash_backward_query_kernel(flash::Dims s, const float* dout, const float* q, const float* k, const float* v,
                                const int32_t* key_valid, float* dq, float* log_sum_exps, float* weighted_means) {
  extern __shared__ __align__(128) unsigned char flash_shared[];
  flash::backward_query_body<Dp>(DeviceExecutor<Operand>{}, s, dout, q, k, v, key_valid, dq, log_sum_exps,
                                 weighted_means, flash_shared);
}

template <int Dp, class Operand>
__global__ void __launch_bounds__(flash::kKeyValueThreads)
    flash_backward_key_value_kernel(flash::Dims s, const float* dout, const float* q, const float* k, const float* v,
                                    const int32_t* key_valid, const float* log_sum_exps,
                                    const float* weighted_means, float* dk, float* dv) {
  extern __shared__ __align__(128) unsigned char flash_shared[];
  flash::backward_key_value_body<Dp>(DeviceExecutor<Operand>{}, s, dout, q, k, v, key_valid, log_sum_exps,
                                     weighted_means, dk, dv, flash_shared);
}

flash::Dims flash_dims(const Tensor& q, const Tensor& k, int64_t length) {
  return flash::dims_of_attention(q.dim(0), q.dim(1), q.dim(2), q.dim(3), k.dim(1), k.dim(2), length);
}

unsigned tiles(int64_t rows) { return static_cast<unsigned>(flash::tiles_of(rows)); }

template <int Dp, class Operand>
void launch_forward(const flash::Dims& s, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_valid,
                    Tensor& out, cudaStream_t stream) {
  const size_t bytes = flash::ForwardLayout<Dp, Operand>::kBytes;
  allow_dynamic_shared_memory(flash_forward_kernel<Dp, Operand>, bytes, "flash attention");
  const dim3 grid(tiles(s.t), static_cast<unsigned>(s.heads), static_cast<unsigned>(s.batch));
  flash_forward_kernel<Dp, Operand><<<grid, flash::kThreads, bytes, stream>>>(
      s, static_cast<const float*>(q.raw()), static_cast<const float*>(k.raw()), static_cast<const float*>(v.raw()),
      static_cast<const int32_t*>(key_valid.raw()), static_cast<float*>(out.raw()));
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

template <int Dp, class Operand>
void launch_backward(const flash::Dims& s, const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                     const Tensor& key_valid, Tensor& dq, Tensor& dk, Tensor& dv, Tensor& log_sum_exps,
                     Tensor& weighted_means, cudaStream_t stream) {
  const size_t query_bytes = flash::BackwardQueryLayout<Dp, Operand>::kBytes;
  const size_t key_bytes = flash::BackwardKeyValueLayout<Dp, Operand>::kBytes;
  allow_dynamic_shared_memory(flash_backward_query_kernel<Dp, Operand>, query_bytes, "flash attention backward");
  allow_dynamic_shared_memory(flash_backward_key_value_kernel<Dp, Operand>, key_bytes, "flash attention backward");
  const dim3 query_grid(tiles(s.t), static_cast<unsigned>(s.heads), static_cast<unsigned>(s.batch));
  flash_backward_query_kernel<Dp, Operand><<<query_grid, flash::kThreads, query_bytes, stream>>>(
      s, static_cast<const float*>(dout.raw()), static_cast<const float*>(q.raw()),
      static_cast<const float*>(k.raw()), static_cast<const float*>(v.raw()),
      static_cast<const int32_t*>(key_valid.raw()), static_cast<float*>(dq.raw()),
      static_cast<float*>(log_sum_exps.raw()), static_cast<float*>(weighted_means.raw()));
  XCOMP_CUDA_CHECK(cudaGetLastError());
  const dim3 key_grid(tiles(s.length), static_cast<unsigned>(s.kv_heads), static_cast<unsigned>(s.batch));
  flash_backward_key_value_kernel<Dp, Operand><<<key_grid, flash::kKeyValueThreads, key_bytes, stream>>>(
      s, static_cast<const float*>(dout.raw()), static_cast<const float*>(q.raw()),
      static_cast<const float*>(k.raw()), static_cast<const float*>(v.raw()),
      static_cast<const int32_t*>(key_valid.raw()), static_cast<const float*>(log_sum_exps.raw()),
      static_cast<const float*>(weighted_means.raw()), static_cast<float*>(dk.raw()), static_cast<float*>(dv.raw()));
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

bool flash_attention_applies(int64_t head_dim) { return head_dim >= 1 && head_dim <= flash::kMaxHeadDim; }

namespace {
// Calls f(Operand{}) with the operand type of the chosen kernels.
template <class F> void with_operand(bool bf16_operands, F&& f) {
  if (bf16_operands) return f(__nv_bfloat16{});
  f(0.f);
}
}  // namespace

void CudaOps::flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length,
                              const Tensor& key_valid, Tensor& out, bool bf16_operands) {
  const flash::Dims s = flash_dims(q, k, length);
  CHECK(flash_attention_applies(s.d)) << "flash attention: head_dim " << s.d;
  flash::with_padded_head_dim(s.d, [&](auto dp) {
    with_operand(bf16_operands, [&](auto operand) {
      launch_forward<decltype(dp)::value, decltype(operand)>(s, q, k, v, key_valid, out, stream_);
    });
  });
}

void CudaOps::flash_attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                       int64_t length, const Tensor& key_valid, Tensor& dq, Tensor& dk, Tensor& dv,
                                       bool bf16_operands) {
  const flash::Dims s = flash_dims(q, k, length);
  CHECK(flash_attention_applies(s.d)) << "flash attention: head_dim " << s.d;
  // Per query: log-sum-exp and D = sum_j P_j dP_j, from the query pass to the key pass.
  Tensor log_sum_exps = empty({s.batch * s.t * s.heads}), weighted_means = empty({s.batch * s.t * s.heads});
  flash::with_padded_head_dim(s.d, [&](auto dp) {
    with_operand(bf16_operands, [&](auto operand) {
      launch_backward<decltype(dp)::value, decltype(operand)>(s, dout, q, k, v, key_valid, dq, dk, dv, log_sum_exps,
                                                              weighted_means, stream_);
    });
  });
}

}  // namespace xcomp::cuda
