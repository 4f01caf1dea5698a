// Opting a kernel in to more dynamic shared memory than CUDA's default 48 KiB.
#pragma once

#include <glog/logging.h>

#include <cstddef>
#include <map>
#include <mutex>
#include <utility>

#include "model/cuda/cuda_check.h"

namespace xcomp::cuda {

// Lets `kernel` use `bytes` of dynamic shared memory, beyond the default 48 KiB when the
// device allows (some room is kept for static shared memory); fails clearly, naming
// `op`, when even the device's opt-in maximum is too small. The attribute is set once per
// kernel, device and larger size (launches call this every time: the attention kernels,
// a few times per layer).
template <class Kernel> void allow_dynamic_shared_memory(Kernel kernel, size_t bytes, const char* op) {
  constexpr size_t kDefault = 48 * 1024, kStaticReserve = 8 * 1024;
  if (bytes + kStaticReserve <= kDefault) return;
  int device = 0;
  XCOMP_CUDA_CHECK(cudaGetDevice(&device));
  static std::mutex mutex;
  static std::map<std::pair<int, const void*>, size_t> allowed;  // (device, kernel) -> bytes
  std::lock_guard<std::mutex> lock(mutex);
  size_t& done = allowed[{device, reinterpret_cast<const void*>(kernel)}];
  if (bytes <= done) return;
  int optin = 0;
  XCOMP_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  CHECK_LE(bytes + kStaticReserve, static_cast<size_t>(optin))
      << op << ": needs " << bytes << " bytes of shared memory per block; the device allows " << optin;
  XCOMP_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  done = bytes;
}

}  // namespace xcomp::cuda
