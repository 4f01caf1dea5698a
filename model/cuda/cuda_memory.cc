// The CUDA backend's object, its memory (allocation, uploads, downloads) and the checks
// every op makes on its arguments.
#include <glog/logging.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "model/cuda/cuda_backend.h"
#include "model/cuda/cuda_check.h"
#include "model/cuda/cuda_ops.h"
#include "model/half.h"
#include "model/input_error.h"

namespace xcomp {

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error; make_cuda_ops reports it
    return 0;
  }
  return count;
}

std::unique_ptr<Ops> make_cuda_ops(int device, CudaWeightStorage weights, const CudaKernelChoices& choices) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  CHECK(status == cudaSuccess && count > 0)
      << "the CUDA backend needs a GPU, but none is usable ("
      << (status == cudaSuccess ? "no device found" : cudaGetErrorString(status)) << ")";
  CHECK(device >= 0 && device < count) << "CUDA device " << device << " requested, " << count << " visible";
  return std::make_unique<cuda::CudaOps>(device, weights, choices);
}

namespace cuda {

CudaOps::CudaOps(int device, CudaWeightStorage weights, const CudaKernelChoices& choices)
    : device_(device),
      weight_storage_(weights),
      forward_attention_(attention_forward_requested(choices.attention)),
      backward_attention_(attention_backward_requested(choices.attention_backward)),
      causal_query_block_(causal_query_block_requested(choices.causal_block)),
      gemm_path_(gemm_path_requested(choices.gemm)) {
  XCOMP_CUDA_CHECK(cudaSetDevice(device));
  allocator_ = DeviceAllocator::create(device, arena_bytes_requested(device, choices.arena));
  XCOMP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  XCOMP_CUBLAS_CHECK(cublasCreate(&cublas_));
  XCOMP_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  // Default math: no TF32 shortcuts in fp32 products (those are tested to 1e-5).
  XCOMP_CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));
  // With fp32 weights every product is true fp32 on cublasGemmEx (matrix_product): no
  // cuBLASLt path, and no workspace for one.
  if (weight_storage_ == CudaWeightStorage::kF32) gemm_path_ = GemmPath::kCublas;
  if (gemm_path_ != GemmPath::kCublas) lt_ = std::make_unique<LtMatmul>(gemm_path_, allocator_, stream_);
}

CudaOps::~CudaOps() {
  // Tensors may outlive this object (they keep the allocator alive), but its queued work
  // must finish before the stream goes.
  XCOMP_CUDA_CHECK(cudaStreamSynchronize(stream_));
  lt_.reset();
  residual_lt_.reset();
  XCOMP_CUBLAS_CHECK(cublasDestroy(cublas_));
  XCOMP_CUDA_CHECK(cudaStreamDestroy(stream_));
}

std::string CudaOps::configuration() const {
  std::string out = std::string("weights ") + (weight_storage_ == CudaWeightStorage::kBf16 ? "bf16" : "f32") +
                    ", attention " + attention_kernels_name(forward_attention_) + "/" +
                    attention_kernels_name(backward_attention_);
  if (runs_causal_blocks(forward_attention_) || runs_causal_blocks(backward_attention_))
    out += " (" + std::to_string(causal_query_block_) + "-query blocks)";
  out += std::string(", products ") + gemm_path_name(gemm_path_);
  const size_t arena = allocator_->arena_bytes();
  char held[64] = "caching allocator";
  if (arena > 0) std::snprintf(held, sizeof held, "arena %.1f GiB", static_cast<double>(arena) / (1 << 30));
  return out + ", " + held;
}

void require_on_device(const char* op, std::initializer_list<const Tensor*> tensors) {
  int position = 0;
  for (const Tensor* t : tensors) {
    ++position;
    CHECK(t->defined()) << op << ": argument " << position << " is an undefined tensor";
    CHECK(t->device() == Device::kCuda) << op << ": argument " << position << " " << shape_str(t->shape())
                                        << " is a " << device_name(t->device())
                                        << " tensor; the CUDA backend takes device tensors (upload it first)";
  }
}

void require_dtype(const char* op, const char* what, const Tensor& t, DType dtype) {
  CHECK(t.dtype() == dtype) << op << ": " << what << " is " << dtype_name(t.dtype()) << ", expected "
                            << dtype_name(dtype);
}

unsigned elementwise_blocks(int64_t n, int threads) {
  // Grid-stride loops cover the rest; more blocks than this only add scheduling cost.
  const int64_t blocks = std::min<int64_t>((n + threads - 1) / threads, int64_t{1} << 16);
  return static_cast<unsigned>(std::max<int64_t>(blocks, 1));
}

Tensor CudaOps::empty(Shape shape, DType dtype) {
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  return Tensor::on_device(allocator_->allocate(bytes), std::move(shape), dtype, Device::kCuda);
}

Tensor CudaOps::zeros(Shape shape, DType dtype) {
  Tensor t = empty(std::move(shape), dtype);
  if (t.nbytes() > 0) XCOMP_CUDA_CHECK(cudaMemsetAsync(t.raw(), 0, t.nbytes(), stream_));
  return t;
}

Tensor CudaOps::upload(const Tensor& host) {
  CHECK(host.defined()) << "upload of an undefined tensor";
  // A tensor already here is returned as is, as the CPU backend returns host tensors:
  // model code uploads inputs that may come from either side.
  if (host.device() == Device::kCuda) return host;
  Tensor t = empty(host.shape(), host.dtype());
  // From pageable memory the copy is staged before this returns, so the host tensor may
  // be released right after.
  if (t.nbytes() > 0)
    XCOMP_CUDA_CHECK(cudaMemcpyAsync(t.raw(), host.raw(), t.nbytes(), cudaMemcpyHostToDevice, stream_));
  return t;
}

Tensor CudaOps::upload_weight(const Tensor& host) {
  CHECK(host.defined() && host.on_host()) << "upload_weight takes a defined host tensor";
  const bool floating = host.dtype() != DType::I32;
  if (!floating) return upload(host);
  if (host.ndim() != 2) return upload(host.to_f32());  // norm weights and other vectors stay fp32
  if (weight_storage_ == CudaWeightStorage::kF32) return upload(host.to_f32());
  if (host.dtype() == DType::BF16) return upload(host);
  // Matrices are stored in bf16, rounded to nearest even on the host (as PyTorch's
  // .to(torch.bfloat16) does); the product kernels read them as CUDA_R_16BF.
  const Tensor f32 = host.to_f32();
  Tensor bf16 = Tensor::empty(host.shape(), DType::BF16);
  const float* src = f32.data<float>();
  uint16_t* dst = bf16.data<uint16_t>();
  const int64_t n = host.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
  return upload(bf16);
}

void CudaOps::synchronize() { XCOMP_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

int64_t CudaOps::device_memory_reserved() const { return static_cast<int64_t>(allocator_->bytes_reserved()); }

int64_t CudaOps::device_memory_needed_at_peak() const {
  return static_cast<int64_t>(allocator_->bytes_needed_at_peak());
}

size_t arena_bytes_requested(int device, const std::string& configured) {
  const BackendSetting setting = backend_setting(configured, "cuda.arena", "XCOMP_CUDA_ARENA");
  const std::string& value = setting.value;
  if (value.empty() || value == "none") return 0;
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  if (value == "auto") {
    size_t free_bytes = 0, total_bytes = 0;
    XCOMP_CUDA_CHECK(cudaSetDevice(device));
    XCOMP_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    const size_t margin = std::max<size_t>(size_t{2} << 30, total_bytes / 20);
    if (free_bytes <= margin)
      throw_input_error(setting.named, ": device ", device, " has only ", free_bytes / kGiB,
                        " GiB free, not more than the ", margin / kGiB, " GiB kept back");
    return free_bytes - margin;
  }
  char* end = nullptr;
  errno = 0;
  const double gib = std::strtod(value.c_str(), &end);
  if (errno != 0 || *end != '\0' || !(gib >= 0) || gib > 1e6)
    throw_input_error(setting.named, ": expected a size in GiB (such as 70), auto or none");
  return static_cast<size_t>(gib * kGiB);
}

Tensor CudaOps::download(const Tensor& t) {
  require_on_device("download", {&t});
  Tensor host = Tensor::empty(t.shape(), t.dtype());
  download_into(t, host);
  return host;
}

void CudaOps::download_into(const Tensor& t, Tensor& host) {
  require_on_device("download_into", {&t});
  CHECK(host.defined() && host.on_host()) << "download_into needs a host tensor to write to";
  CHECK(t.shape() == host.shape() && t.dtype() == host.dtype())
      << "download_into: " << shape_str(t.shape()) << " " << dtype_name(t.dtype()) << " into "
      << shape_str(host.shape()) << " " << dtype_name(host.dtype());
  if (t.nbytes() > 0)
    XCOMP_CUDA_CHECK(cudaMemcpyAsync(host.raw(), t.raw(), t.nbytes(), cudaMemcpyDeviceToHost, stream_));
  XCOMP_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaOps::upload_into(const Tensor& host, Tensor& t) {
  require_on_device("upload_into", {&t});
  CHECK(host.defined() && host.on_host()) << "upload_into reads a host tensor";
  CHECK(t.shape() == host.shape() && t.dtype() == host.dtype())
      << "upload_into: " << shape_str(host.shape()) << " " << dtype_name(host.dtype()) << " into "
      << shape_str(t.shape()) << " " << dtype_name(t.dtype());
  if (t.nbytes() > 0)
    XCOMP_CUDA_CHECK(cudaMemcpyAsync(t.raw(), host.raw(), t.nbytes(), cudaMemcpyHostToDevice, stream_));
}

}  // namespace cuda
}  // namespace xcomp
