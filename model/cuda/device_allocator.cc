#include "model/cuda/device_allocator.h"

#include <glog/logging.h>

#include "model/cuda/cuda_check.h"

namespace xcomp::cuda {

std::shared_ptr<DeviceAllocator> DeviceAllocator::create(int device) {
  return std::shared_ptr<DeviceAllocator>(new DeviceAllocator(device));
}

DeviceAllocator::~DeviceAllocator() {
  // Runs at process exit too, possibly after the CUDA runtime has shut down, when
  // cudaFree reports cudaErrorCudartUnloading: the driver reclaims the memory then anyway.
  for (auto& [bucket, blocks] : free_lists_) {
    for (void* block : blocks) {
      const cudaError_t status = cudaFree(block);
      if (status != cudaSuccess && status != cudaErrorCudartUnloading)
        LOG(ERROR) << "cudaFree failed at " << __FILE__ << ":" << __LINE__ << ": " << cudaGetErrorString(status);
    }
  }
}

size_t DeviceAllocator::bucket_size(size_t bytes) {
  constexpr size_t kSmallest = 512, kLargeStep = size_t{2} << 20, kSmallLimit = size_t{1} << 20;
  if (bytes <= kSmallLimit) {
    size_t size = kSmallest;
    while (size < bytes) size *= 2;
    return size;
  }
  return (bytes + kLargeStep - 1) / kLargeStep * kLargeStep;
}

std::shared_ptr<void> DeviceAllocator::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t bucket = bucket_size(bytes);
  void* block = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_lists_.find(bucket);
    if (it != free_lists_.end() && !it->second.empty()) {
      block = it->second.back();
      it->second.pop_back();
    } else {
      // The calling thread may not have made this device current (cudaSetDevice is per thread).
      XCOMP_CUDA_CHECK(cudaSetDevice(device_));
      cudaError_t status = cudaMalloc(&block, bucket);
      if (status == cudaErrorMemoryAllocation) {
        // The cache may hold the memory in buckets of other sizes: give it back and retry.
        (void)cudaGetLastError();  // clears the sticky-free allocation error
        release_cached_locked();
        status = cudaMalloc(&block, bucket);
      }
      CHECK(status == cudaSuccess) << "cudaMalloc of " << bucket << " bytes on device " << device_ << " failed at "
                                   << __FILE__ << ":" << __LINE__ << ": " << cudaGetErrorString(status) << " ("
                                   << bytes_reserved_ << " bytes already reserved)";
      bytes_reserved_ += bucket;
    }
  }
  std::shared_ptr<DeviceAllocator> self = shared_from_this();
  return std::shared_ptr<void>(block, [self, bucket](void* p) { self->release(p, bucket); });
}

void DeviceAllocator::release(void* block, size_t bucket) {
  std::lock_guard<std::mutex> lock(mutex_);
  free_lists_[bucket].push_back(block);
}

void DeviceAllocator::release_cached_locked() {
  for (auto& [bucket, blocks] : free_lists_) {
    for (void* block : blocks) {
      XCOMP_CUDA_CHECK(cudaFree(block));
      bytes_reserved_ -= bucket;
    }
    blocks.clear();
  }
}

size_t DeviceAllocator::bytes_reserved() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return bytes_reserved_;
}

}  // namespace xcomp::cuda
