// The CUDA backend of the op set (model/ops.h): activations in fp32, frozen weight
// matrices stored in bf16 (upload_weight), matrix products on cuBLAS with fp32
// accumulation, one stream per backend object. Tensors it makes live on the device.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "model/ops.h"

namespace xcomp {

// How frozen weight matrices are stored: bf16 (training and benchmarks: half the memory,
// tensor-core products) or fp32 (exact parity checks against the CPU backend).
enum class CudaWeightStorage { kBf16, kF32 };

// The CUDA devices this process sees; 0 when there are none or the driver cannot be used.
int cuda_device_count();

// The kernels and allocator a run's config chooses (its `cuda:` keys), spelled as the
// XCOMP_CUDA_* variables take them: each one left empty (0) is that variable's, and where
// the variable is unset too, the backend's default (model/cuda/cuda_backend.h).
struct CudaKernelChoices {
  std::string attention;           // XCOMP_CUDA_ATTENTION: gemm, gemm_causal(_bf16), flash(_bf16), tiled, simple
  std::string attention_backward;  // XCOMP_CUDA_ATTENTION_BACKWARD: the same, or reference for simple
  int64_t causal_block = 0;        // XCOMP_CUDA_CAUSAL_BLOCK: queries per block of gemm_causal
  std::string gemm;                // XCOMP_CUDA_GEMM: cublas, lt, lt_tuned
  std::string arena;               // XCOMP_CUDA_ARENA: none, auto or a size in GiB
};

// The backend on CUDA device `device` (the local rank picks it in a multi-GPU job).
// Fails with a clear message when no such device exists; a bad choice is an InputError
// naming the config key or the variable it came from.
std::unique_ptr<Ops> make_cuda_ops(int device, CudaWeightStorage weights = CudaWeightStorage::kBf16,
                                   const CudaKernelChoices& choices = {});

}  // namespace xcomp
