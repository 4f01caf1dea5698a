// The CUDA backend's class (make_cuda_ops in cuda_ops.h is the public way to get one).
// Its methods are split by concern: memory and checks (cuda_memory.cc), matrix products
// and lookups (cuda_linear.cu), row-wise and elementwise ops (cuda_elementwise.cu,
// rmsnorm.cu), attention (cuda_attention.cu, dispatching to the batched products of
// cuda_attention_gemm.cu and the flash kernels of cuda_attention_flash.cu), the loss
// (cuda_loss.cu) and the optimizer's arithmetic (cuda_optimizer.cu).
// Everything runs in order on one stream per object, and every tensor an op receives
// must already be on this device.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <initializer_list>
#include <memory>

#include "model/cuda/backend_setting.h"
#include "model/cuda/cuda_ops.h"
#include "model/cuda/device_allocator.h"
#include "model/cuda/lt_matmul.h"
#include "model/ops.h"

namespace xcomp::cuda {

// Which attention kernels run. kGemm: cuBLAS batched products over materialised scores
// (cuda_attention_gemm.cu), where its workspace fits; kGemmCausal (the default): the same
// over blocks of queries (kCausalQueryBlock, or XCOMP_CUDA_CAUSAL_BLOCK), each
// multiplying only the keys its queries can see (about 64% of the causal square at 480
// tokens; on an H200 at LLaMA-3-8B's shape 0.41 ms less a layer than kGemm, forward and
// backward, encoder and decoder, see the README); kGemmCausalBf16: kGemmCausal's products
// on bf16 copies of their operands, P and dS rounded to bf16 (with bf16 weights; with fp32
// ones kGemmCausal runs); kTiled: the flash-style CUDA-core kernels;
// kSimple (forward) / kReference (backward): one block per query or key entry. The
// slower ones stay as cross-checks and fallbacks. kFlash: the flash kernels on tensor
// cores (TF32 operands; cuda_attention_flash.cu), kFlashBf16 the same with bf16 operands
// (as PyTorch's bf16 attention: twice the tensor-core rate), with bf16 weights and
// head_dim <= 128 (else kGemm runs); opt-in: on an H200 they take 2 to 4 times kGemm's
// time (README, "GPU").
enum class AttentionKernels { kGemm, kGemmCausal, kGemmCausalBf16, kFlash, kFlashBf16, kTiled, kSimple, kReference };
constexpr int64_t kCausalQueryBlock = 128;
// Whether these kernels take their queries in causal blocks (gemm_causal's two forms).
inline bool runs_causal_blocks(AttentionKernels kernels) {
  return kernels == AttentionKernels::kGemmCausal || kernels == AttentionKernels::kGemmCausalBf16;
}

// The attention kernels (cuda.attention, XCOMP_CUDA_ATTENTION: gemm, gemm_causal,
// gemm_causal_bf16, flash, flash_bf16, tiled or simple; cuda.attention_backward, XCOMP_CUDA_ATTENTION_BACKWARD:
// the same with reference for simple); neither set gives kGemmCausal, anything else is
// an input error naming where it came from. Defined with the kernels in cuda_attention.cu.
AttentionKernels attention_forward_requested(const std::string& configured = "");
AttentionKernels attention_backward_requested(const std::string& configured = "");
// The setting's name of each choice ("gemm", "flash_bf16", ...; "simple", "reference").
const char* attention_kernels_name(AttentionKernels kernels);
// Queries per block for kGemmCausal and kGemmCausalBf16 (cuda.causal_block where positive, else
// XCOMP_CUDA_CAUSAL_BLOCK, a positive integer; neither gives kCausalQueryBlock), so a GPU
// run can compare block sizes without a rebuild.
int64_t causal_query_block_requested(int64_t configured = 0);
// The size of the memory arena a backend reserves on `device` at start-up (cuda.arena,
// else XCOMP_CUDA_ARENA): in GiB ("70", "70.5"), or "auto" (the device's free memory less
// 5% of its total, at least 2 GiB, for cuBLAS, NCCL and the context); neither set, "none"
// or 0: no arena (the caching allocator). Anything else is an input error naming where it
// came from.
size_t arena_bytes_requested(int device, const std::string& configured = "");
// Whether the flash kernels take this head_dim (1 to 128).
bool flash_attention_applies(int64_t head_dim);

class CudaOps final : public Ops {
 public:
  CudaOps(int device, CudaWeightStorage weights, const CudaKernelChoices& choices = {});
  ~CudaOps() override;
  CudaOps(const CudaOps&) = delete;
  CudaOps& operator=(const CudaOps&) = delete;

  const char* name() const override { return "cuda"; }
  // "weights bf16, attention flash/flash_bf16, products lt_tuned, arena 70.0 GiB": what the
  // config or the environment chose (cuda_memory.cc).
  std::string configuration() const override;
  Tensor empty(Shape shape, DType dtype = DType::F32) override;
  Tensor zeros(Shape shape, DType dtype = DType::F32) override;
  Tensor upload(const Tensor& host) override;
  Tensor upload_weight(const Tensor& host) override;
  Tensor download(const Tensor& t) override;
  void download_into(const Tensor& t, Tensor& host) override;
  void upload_into(const Tensor& host, Tensor& t) override;
  void synchronize() override;
  int64_t device_memory_reserved() const override;
  int64_t device_memory_needed_at_peak() const override;
  // bf16 products (bf16 weights) read bf16 inputs.
  DType product_dtype() const override {
    return weight_storage_ == CudaWeightStorage::kBf16 ? DType::BF16 : DType::F32;
  }

  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override;
  void linear(const Tensor& x, const Tensor& w, Tensor& y) override;
  void linear_add(const Tensor& x, const Tensor& w, Tensor& y) override;
  void linear_residual(const Tensor& x, const Tensor& w, const Tensor& residual, Tensor& y) override;
  void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& y) override;
  void rmsnorm_into_two(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& y2) override;
  void rope(Tensor& x, const Tensor& positions, const Tensor& inv_freq) override;
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length, const Tensor& key_valid,
                 Tensor& out) override;
  void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) override;
  void add_inplace(Tensor& y, const Tensor& x) override;
  void write_rows(const Tensor& src, Tensor& dst, int64_t offset) override;
  void read_rows(const Tensor& src, int64_t offset, Tensor& dst) override;
  void add_scaled(Tensor& y, const Tensor& x, float alpha) override;
  void zero(Tensor& y) override;
  void dropout(const Tensor& x, float p, uint64_t seed, uint64_t stream, uint64_t first_element,
               Tensor& out) override;

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

  double sum_of_squares(const Tensor& x) override;
  std::vector<double> sums_of_squares(const std::vector<Tensor>& xs) override;
  void scale(Tensor& x, float factor) override;
  void adamw_update(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                    const AdamWStepScalars& scalars) override;

  cudaStream_t stream() const { return stream_; }
  void* stream_handle() override { return stream_; }

 private:
  // y = x . w^T or its input gradient through cuBLAS; shared by linear and backward.
  // With a residual (accumulate set), y = residual + x . w^T, y a tensor of its own.
  void gemm_input_times_weight(const Tensor& x, const Tensor& w, Tensor& y, bool transpose_w, bool accumulate,
                               const char* op, const Tensor* residual = nullptr);
  // One column-major product C = op(A) op(B) + beta C (cublasGemmEx's arguments, alpha
  // 1): bf16 or TF32 (through lt_ when set) or true fp32. With d, the result goes to d
  // and C is only read: one cuBLASLt product where one is set up (lt_, else
  // residual_lt_), else a copy of C into d and the product there. Defined in
  // cuda_linear.cu.
  cublasStatus_t matrix_product(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void* a,
                                cudaDataType ab_type, int lda, const void* b, int ldb, float beta, void* c, int ldc,
                                bool bf16_inputs, bool tf32, cudaDataType c_type, void* d = nullptr);
  // x converted to bf16 on the device (a temporary from the allocator).
  Tensor to_bf16(const Tensor& x);
  // Attention through batched cuBLAS products (cuda_attention_gemm.cu): the forward when
  // dout is null (writes *out), else the backward (writes *dq, adds into *dk and *dv).
  // Queries go in blocks of `query_block` (T or more: one block over every key); the
  // products take bf16 operands (P and dS rounded to bf16) with bf16_operands, else fp32
  // ones (TF32 with bf16 weights).
  void gemm_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length, const Tensor& key_valid,
                      const Tensor* dout, Tensor* out, Tensor* dq, Tensor* dk, Tensor* dv, int64_t query_block,
                      bool bf16_operands);
  // Attention through the tensor-core flash kernels (cuda_attention_flash.cu), TF32 or
  // bf16 operands: out, or dq (written) and dk, dv (added to). head_dim must be
  // flash_attention_applies.
  void flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length, const Tensor& key_valid,
                       Tensor& out, bool bf16_operands);
  void flash_attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                int64_t length, const Tensor& key_valid, Tensor& dq, Tensor& dk, Tensor& dv,
                                bool bf16_operands);
  // Whether the flash kernels run for this head_dim: TF32 is attention's precision only
  // with bf16 weights (with fp32 ones every product is true fp32).
  bool flash_applies(int64_t head_dim) const {
    return weight_storage_ == CudaWeightStorage::kBf16 && flash_attention_applies(head_dim);
  }
  // gemm_attention's query block and operands for these kernels: causal blocks for
  // kGemmCausal and kGemmCausalBf16 (else one block of all `t` queries), bf16 operands for
  // kGemmCausalBf16 with bf16 weights (with fp32 ones attention stays true fp32).
  int64_t gemm_query_block(AttentionKernels kernels, int64_t t) const;
  bool gemm_bf16_operands(AttentionKernels kernels) const;
  // Whether gemm_attention runs this call: its score matrices fit the workspace limit, and
  // every per-head pointer it hands cuBLAS is 16-byte aligned (the batched products
  // cannot see the pointers, so cuBLAS assumes that alignment from the sizes and faults
  // on a misaligned one): head_dim a multiple of 8 with bf16 operands, of 4 with fp32
  // ones, and the tensors' own storage aligned. Otherwise the tiled kernels run.
  bool gemm_attention_applies(int64_t batch, int64_t heads, int64_t t, int64_t length, int64_t head_dim,
                              bool bf16_operands, std::initializer_list<const Tensor*> tensors) const;
  void attention_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
                      const void* const* a, int lda, const void* const* b, int ldb, float beta, void* const* c,
                      int ldc, int count, cudaDataType ab_type);

  int device_;
  CudaWeightStorage weight_storage_;
  // Read once, here: see AttentionKernels. Where the chosen kernels do not apply (the
  // gemm workspace too large, head_dim beyond the tiles) the next one down runs.
  AttentionKernels forward_attention_;
  AttentionKernels backward_attention_;
  int64_t causal_query_block_;
  std::shared_ptr<DeviceAllocator> allocator_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  // The bf16 and TF32 products' path (cuda.gemm or XCOMP_CUDA_GEMM, read once, here;
  // cublas with fp32 weights, which take neither); lt_ is set for the cuBLASLt ones.
  GemmPath gemm_path_;
  std::unique_ptr<LtMatmul> lt_;
  // linear_residual's products where lt_ is not set (the cublas path), made at the first:
  // cublasGemmEx cannot write its result apart from its C.
  std::unique_ptr<LtMatmul> residual_lt_;
};

// CHECKs that every tensor is defined and on the device, naming the op and the argument
// position (inputs from the host must be uploaded first).
void require_on_device(const char* op, std::initializer_list<const Tensor*> tensors);
// CHECKs a tensor's dtype, naming the op and what was passed.
void require_dtype(const char* op, const char* what, const Tensor& t, DType dtype);

// Blocks for a grid-stride loop over n elements.
unsigned elementwise_blocks(int64_t n, int threads);

}  // namespace xcomp::cuda
