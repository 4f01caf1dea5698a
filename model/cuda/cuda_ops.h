// The CUDA backend of the op set (model/ops.h): activations in fp32, frozen weight
// matrices stored in bf16 (upload_weight), matrix products on cuBLAS with fp32
// accumulation, one stream per backend object. Tensors it makes live on the device.
#pragma once

#include <memory>

#include "model/ops.h"

namespace xcomp {

// How frozen weight matrices are stored: bf16 (training and benchmarks: half the memory,
// tensor-core products) or fp32 (exact parity checks against the CPU backend).
enum class CudaWeightStorage { kBf16, kF32 };

// The CUDA devices this process sees; 0 when there are none or the driver cannot be used.
int cuda_device_count();

// The backend on CUDA device `device` (the local rank picks it in a multi-GPU job).
// Fails with a clear message when no such device exists.
std::unique_ptr<Ops> make_cuda_ops(int device, CudaWeightStorage weights = CudaWeightStorage::kBf16);

}  // namespace xcomp
