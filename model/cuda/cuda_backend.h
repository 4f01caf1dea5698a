// The CUDA backend's class (make_cuda_ops in cuda_ops.h is the public way to get one).
// Its methods are split by concern: memory and checks (cuda_memory.cc), matrix products
// and lookups (cuda_linear.cu), row-wise and elementwise ops (cuda_elementwise.cu,
// rmsnorm.cu), attention (cuda_attention.cu) and the loss (cuda_loss.cu).
// Everything runs in order on one stream per object, and every tensor an op receives
// must already be on this device.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <initializer_list>
#include <memory>

#include "model/cuda/cuda_ops.h"
#include "model/cuda/device_allocator.h"
#include "model/ops.h"

namespace xcomp::cuda {

// Whether XCOMP_CUDA_ATTENTION_BACKWARD asks for the reference backward (throws an input
// error on an unknown value); defined with the kernels in cuda_attention.cu.
bool reference_attention_backward_requested();

class CudaOps final : public Ops {
 public:
  CudaOps(int device, CudaWeightStorage weights);
  ~CudaOps() override;
  CudaOps(const CudaOps&) = delete;
  CudaOps& operator=(const CudaOps&) = delete;

  const char* name() const override { return "cuda"; }
  Tensor empty(Shape shape, DType dtype = DType::F32) override;
  Tensor zeros(Shape shape, DType dtype = DType::F32) override;
  Tensor upload(const Tensor& host) override;
  Tensor upload_weight(const Tensor& host) override;
  Tensor download(const Tensor& t) override;
  void download_into(const Tensor& t, Tensor& host) override;
  void synchronize() override;
  int64_t device_memory_reserved() const override;

  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override;
  void linear(const Tensor& x, const Tensor& w, Tensor& y) override;
  void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& y) override;
  void rope(Tensor& x, const Tensor& positions, const Tensor& inv_freq) override;
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length, const Tensor& key_valid,
                 Tensor& out) override;
  void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) override;
  void add_inplace(Tensor& y, const Tensor& x) override;
  void write_rows(const Tensor& src, Tensor& dst, int64_t offset) override;
  void read_rows(const Tensor& src, int64_t offset, Tensor& dst) override;
  void add_scaled(Tensor& y, const Tensor& x, float alpha) override;
  void zero(Tensor& y) override;
  void dropout(const Tensor& x, float p, uint64_t seed, uint64_t stream, Tensor& out) override;

  void linear_backward_input(const Tensor& dy, const Tensor& w, Tensor& dx, bool accumulate) override;
  void linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, bool accumulate) override;
  void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, float eps, Tensor& dx,
                        bool accumulate) override;
  void rope_backward(Tensor& dx, const Tensor& positions, const Tensor& inv_freq) override;
  void swiglu_backward(const Tensor& dout, const Tensor& gate, const Tensor& up, Tensor& dgate, Tensor& dup) override;
  void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, int64_t length,
                          const Tensor& key_valid, Tensor& dq, Tensor& dk, Tensor& dv) override;
  void cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& weights, Tensor& losses,
                     Tensor& dlogits) override;

  cudaStream_t stream() const { return stream_; }

 private:
  // y = x . w^T or its input gradient through cuBLAS; shared by linear and backward.
  void gemm_input_times_weight(const Tensor& x, const Tensor& w, Tensor& y, bool transpose_w, bool accumulate,
                               const char* op);
  // x converted to bf16 on the device (a temporary from the allocator).
  Tensor to_bf16(const Tensor& x);

  int device_;
  CudaWeightStorage weight_storage_;
  // XCOMP_CUDA_ATTENTION=simple: the one-block-per-query forward everywhere (a fallback
  // and a cross-check for the tiled one); unset or "tiled": the tiled forward where it
  // applies.
  bool simple_attention_ = false;
  // XCOMP_CUDA_ATTENTION_BACKWARD=reference: the two per-query / per-key-entry backward
  // kernels (the tiled backward's cross-check); unset or "tiled": the tiled backward
  // where it applies (head_dim a multiple of 4, at most 128). Read once, here.
  bool reference_attention_backward_ = reference_attention_backward_requested();
  std::shared_ptr<DeviceAllocator> allocator_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
};

// CHECKs that every tensor is defined and on the device, naming the op and the argument
// position (inputs from the host must be uploaded first).
void require_on_device(const char* op, std::initializer_list<const Tensor*> tensors);
// CHECKs a tensor's dtype, naming the op and what was passed.
void require_dtype(const char* op, const char* what, const Tensor& t, DType dtype);

// Blocks for a grid-stride loop over n elements.
unsigned elementwise_blocks(int64_t n, int threads);

}  // namespace xcomp::cuda
