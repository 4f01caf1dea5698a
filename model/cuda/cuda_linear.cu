// Matrix products (cuBLAS) and table lookups of the CUDA backend. Frozen weights are
// bf16: the activations are rounded to bf16 for the product (or arrive in bf16, written so
// by the op before them: product_dtype), which accumulates in fp32 into an fp32 output,
// or a bf16 one where only another product reads it. Trainable (fp32) weights, LoRA's,
// take TF32 products beside bf16 frozen weights (their error is far below the bf16
// products' around them) and true fp32 products when the frozen weights are fp32 too
// (the CPU backend's numbers).
//
// cuBLAS is column-major: a row-major [R, C] matrix is a column-major [C, R] one, so
// y[M, N] = x[M, K] . w[N, K]^T is, column-major, y^T[N, M] = w^T . x^T, i.e.
// gemm(T, N, m=N, n=M, k=K, A=w (ld K), B=x (ld K), C=y (ld N)).
#include <cuda_bf16.h>
#include <glog/logging.h>

#include <limits>

#include "model/cuda/cuda_backend.h"
#include "model/cuda/cuda_check.h"
#include "model/cuda/float_elements.cuh"

namespace xcomp::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void f32_to_bf16_kernel(const float* x, int64_t n, __nv_bfloat16* y) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    y[i] = __float2bfloat16_rn(x[i]);
}

// The same rounding over packs of eight (16-byte accesses): every product of an fp32
// activation and a bf16 weight starts with this copy (about 100 MB of traffic each at
// LLaMA-3-8B's training shape, several a layer).
__global__ void f32_to_bf16_packed_kernel(const float* x, int64_t packs, __nv_bfloat16* y) {
  for (int64_t pack = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; pack < packs;
       pack += int64_t{gridDim.x} * blockDim.x) {
    float v[kPack];
    load_pack(x, pack * kPack, v);
    store_pack(y, pack * kPack, v);
  }
}

// One block per id. An id outside the table (the caller validates user ids, so this is a
// bug upstream) gives a row of NaN rather than reading out of bounds.
template <class T>
__global__ void embedding_kernel(const T* table, int64_t rows, int64_t width, const int32_t* ids, float* out) {
  const int32_t id = ids[blockIdx.x];
  float* row = out + blockIdx.x * width;
  const bool inside = id >= 0 && id < rows;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x)
    row[i] = inside ? load_element(table, id * width + i) : __int_as_float(0x7fc00000);
}

int as_int(int64_t v, const char* op) {
  CHECK(v <= std::numeric_limits<int>::max()) << op << ": dimension " << v << " exceeds cuBLAS's int range";
  return static_cast<int>(v);
}

}  // namespace

// bf16 inputs accumulate in fp32, into an fp32 or (c_type) bf16 output; fp32 inputs take
// TF32 when `tf32`, else an fp32 compute type that never takes TF32 shortcuts (the
// pedantic one, or where a cuBLAS build does not offer it for these types, plain
// COMPUTE_32F, whose default math mode also keeps full fp32). The bf16 and TF32 products
// go through cuBLASLt when XCOMP_CUDA_GEMM asks (lt_matmul.h), else cublasGemmEx.
cublasStatus_t CudaOps::matrix_product(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void* a,
                                       cudaDataType ab_type, int lda, const void* b, int ldb, float beta, void* c,
                                       int ldc, bool bf16_inputs, bool tf32, cudaDataType c_type, void* d) {
  const float alpha = 1.0f;
  // A result apart from C needs cuBLASLt: on the cublas path, a handle made for these at
  // the first one (inference, which adds in place, never makes it).
  if (d != nullptr && lt_ == nullptr && residual_lt_ == nullptr && (bf16_inputs || tf32))
    residual_lt_ = std::make_unique<LtMatmul>(GemmPath::kLt, allocator_, stream_);
  LtMatmul* const lt = lt_ != nullptr ? lt_.get() : d != nullptr ? residual_lt_.get() : nullptr;
  if ((bf16_inputs || tf32) && lt != nullptr) {
    MatmulCall call;
    call.ta = ta, call.tb = tb, call.m = m, call.n = n, call.k = k;
    call.a = a, call.lda = lda, call.b = b, call.ldb = ldb, call.c = c, call.ldc = ldc, call.d = d;
    call.ab_type = ab_type, call.c_type = c_type;
    call.compute = bf16_inputs ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32, call.beta = beta;
    const cublasStatus_t status = lt->run(call);
    if (status != CUBLAS_STATUS_NOT_SUPPORTED) return status;
  }
  if (d != nullptr) {
    // cublasGemmEx writes its C: D starts as a copy of it (C is ldc x n, dense here).
    XCOMP_CUDA_CHECK(cudaMemcpyAsync(d, c, static_cast<size_t>(ldc) * n * (c_type == CUDA_R_16BF ? 2 : 4),
                                     cudaMemcpyDeviceToDevice, stream_));
    c = d;
  }
  if (bf16_inputs || tf32) {
    const cublasComputeType_t compute = bf16_inputs ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32;
    return cublasGemmEx(cublas_, ta, tb, m, n, k, &alpha, a, ab_type, lda, b, ab_type, ldb, &beta, c, c_type, ldc,
                        compute, CUBLAS_GEMM_DEFAULT);
  }
  const cublasStatus_t status = cublasGemmEx(cublas_, ta, tb, m, n, k, &alpha, a, ab_type, lda, b, ab_type, ldb, &beta,
                                             c, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT);
  if (status != CUBLAS_STATUS_NOT_SUPPORTED) return status;
  LOG_FIRST_N(WARNING, 1) << "cuBLAS offers no pedantic fp32 product here; using CUBLAS_COMPUTE_32F";
  return cublasGemmEx(cublas_, ta, tb, m, n, k, &alpha, a, ab_type, lda, b, ab_type, ldb, &beta, c, CUDA_R_32F, ldc,
                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

void CudaOps::embedding(const Tensor& table, const Tensor& ids, Tensor& out) {
  require_on_device("embedding", {&table, &ids, &out});
  require_dtype("embedding", "ids", ids, DType::I32);
  require_dtype("embedding", "out", out, DType::F32);
  CHECK_EQ(table.ndim(), 2) << "embedding: table " << shape_str(table.shape());
  const int64_t rows = table.dim(0), width = table.dim(1), n = ids.numel();
  CHECK_EQ(out.numel(), n * width) << "embedding: out " << shape_str(out.shape());
  if (n == 0) return;
  CHECK_LT(n, int64_t{1} << 31) << "embedding: too many ids";
  if (table.dtype() == DType::F32) {
    embedding_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream_>>>(
        static_cast<const float*>(table.raw()), rows, width, static_cast<const int32_t*>(ids.raw()),
        static_cast<float*>(out.raw()));
  } else {
    require_dtype("embedding", "table", table, DType::BF16);
    embedding_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream_>>>(
        static_cast<const __nv_bfloat16*>(table.raw()), rows, width, static_cast<const int32_t*>(ids.raw()),
        static_cast<float*>(out.raw()));
  }
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

Tensor CudaOps::to_bf16(const Tensor& x) {
  Tensor y = empty(x.shape(), DType::BF16);
  const int64_t n = x.numel();
  if (n == 0) return y;
  const float* from = static_cast<const float*>(x.raw());
  __nv_bfloat16* to = static_cast<__nv_bfloat16*>(y.raw());
  const int64_t packed = packed_elements(n, {from, to});
  if (packed > 0)
    f32_to_bf16_packed_kernel<<<elementwise_blocks(packed / kPack, kThreads), kThreads, 0, stream_>>>(
        from, packed / kPack, to);
  if (packed < n)
    f32_to_bf16_kernel<<<elementwise_blocks(n - packed, kThreads), kThreads, 0, stream_>>>(from + packed, n - packed,
                                                                                         to + packed);
  XCOMP_CUDA_CHECK(cudaGetLastError());
  return y;
}

void CudaOps::gemm_input_times_weight(const Tensor& x, const Tensor& w, Tensor& y, bool transpose_w,
                                      bool accumulate, const char* op, const Tensor* residual) {
  require_on_device(op, {&x, &w, &y});
  CHECK_EQ(w.ndim(), 2) << op << ": weight " << shape_str(w.shape());
  CHECK(w.dtype() == DType::F32 || w.dtype() == DType::BF16)
      << op << ": weight is " << dtype_name(w.dtype()) << ", expected F32 or BF16 (upload_weight)";
  // Activations are F32, or BF16 beside a bf16 weight (product_dtype): an input already in
  // bf16 goes to cuBLAS as it is, and a BF16 output is written rounded by cuBLAS.
  const DType activations = w.dtype() == DType::BF16 ? DType::BF16 : DType::F32;
  const auto check_activation = [&](const char* what, const Tensor& t) {
    CHECK(t.dtype() == DType::F32 || t.dtype() == activations)
        << op << ": " << what << " is " << dtype_name(t.dtype()) << " beside a " << dtype_name(w.dtype())
        << " weight; expected F32" << (activations == DType::BF16 ? " or BF16" : "");
  };
  check_activation("input", x);
  check_activation("output", y);
  const int64_t n = w.dim(0), k = w.dim(1);
  // transpose_w: y[M, N] = x[M, K] w^T; else y[M, K] = x[M, N] w.
  const int64_t in_width = transpose_w ? k : n, out_width = transpose_w ? n : k;
  CHECK_EQ(x.numel() % in_width, 0) << op << ": input " << shape_str(x.shape()) << " vs weight "
                                    << shape_str(w.shape());
  const int64_t m = x.numel() / in_width;
  CHECK_EQ(y.numel(), m * out_width) << op << ": output " << shape_str(y.shape()) << " vs weight "
                                     << shape_str(w.shape());
  if (residual) {
    require_on_device(op, {residual});
    CHECK(accumulate && residual->dtype() == y.dtype() && residual->numel() == y.numel())
        << op << ": residual " << shape_str(residual->shape()) << " " << dtype_name(residual->dtype()) << " for y "
        << shape_str(y.shape()) << " " << dtype_name(y.dtype());
    CHECK(residual->raw() != y.raw() && x.raw() != y.raw()) << op << ": y must be a tensor of its own";
  }
  if (m == 0) return;
  const float beta = accumulate ? 1.0f : 0.0f;
  const bool bf16 = w.dtype() == DType::BF16;
  const bool tf32 = !bf16 && weight_storage_ == CudaWeightStorage::kBf16;  // LoRA's products in training
  Tensor x16;
  if (bf16 && x.dtype() == DType::F32) x16 = to_bf16(x);
  const void* b_matrix = x16.defined() ? x16.raw() : x.raw();
  const cudaDataType ab_type = bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const cudaDataType c_type = y.dtype() == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F;
  // Column-major: y^T[out_width, M] = op(w) . x^T, with w seen as [K, N] (ld K).
  XCOMP_CUBLAS_CHECK(matrix_product(transpose_w ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, as_int(out_width, op),
                                    as_int(m, op), as_int(in_width, op), w.raw(), ab_type, as_int(k, op), b_matrix,
                                    as_int(in_width, op), beta, residual ? const_cast<void*>(residual->raw()) : y.raw(),
                                    as_int(out_width, op), bf16, tf32, c_type, residual ? y.raw() : nullptr));
  // x16 goes back to the allocator here; only work queued after the product can reuse it.
}

void CudaOps::linear(const Tensor& x, const Tensor& w, Tensor& y) {
  gemm_input_times_weight(x, w, y, /*transpose_w=*/true, /*accumulate=*/false, "linear");
}

void CudaOps::linear_add(const Tensor& x, const Tensor& w, Tensor& y) {
  require_dtype("linear_add", "y", y, DType::F32);
  gemm_input_times_weight(x, w, y, /*transpose_w=*/true, /*accumulate=*/true, "linear_add");
}

void CudaOps::linear_residual(const Tensor& x, const Tensor& w, const Tensor& residual, Tensor& y) {
  require_dtype("linear_residual", "y", y, DType::F32);
  gemm_input_times_weight(x, w, y, /*transpose_w=*/true, /*accumulate=*/true, "linear_residual", &residual);
}

void CudaOps::linear_backward_input(const Tensor& dy, const Tensor& w, Tensor& dx, bool accumulate) {
  gemm_input_times_weight(dy, w, dx, /*transpose_w=*/false, accumulate, "linear_backward_input");
}

void CudaOps::linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, bool accumulate) {
  const char* op = "linear_backward_weight";
  require_on_device(op, {&dy, &x, &dw});
  require_dtype(op, "dy", dy, DType::F32);
  require_dtype(op, "x", x, DType::F32);
  require_dtype(op, "dw (weight gradients are for fp32 trainables)", dw, DType::F32);
  CHECK_EQ(dw.ndim(), 2) << op << ": dw " << shape_str(dw.shape());
  const int64_t n = dw.dim(0), k = dw.dim(1);
  CHECK_EQ(dy.numel() % n, 0) << op << ": dy " << shape_str(dy.shape());
  const int64_t m = dy.numel() / n;
  CHECK_EQ(x.numel(), m * k) << op << ": x " << shape_str(x.shape());
  if (m == 0) {
    if (!accumulate) zero(dw);
    return;
  }
  const float beta = accumulate ? 1.0f : 0.0f;
  // dw[N, K] = dy^T x; column-major dw^T[K, N] = x^T[K, M] . dy[M, N], where x is [K, M]
  // (ld K) as stored and dy is stored as [N, M] (ld N), hence transposed.
  XCOMP_CUBLAS_CHECK(matrix_product(CUBLAS_OP_N, CUBLAS_OP_T, as_int(k, op), as_int(n, op), as_int(m, op), x.raw(),
                                    CUDA_R_32F, as_int(k, op), dy.raw(), as_int(n, op), beta, dw.raw(), as_int(k, op),
                                    /*bf16_inputs=*/false, /*tf32=*/weight_storage_ == CudaWeightStorage::kBf16,
                                    CUDA_R_32F));
}

}  // namespace xcomp::cuda
