#include "model/cuda/device_allocator.h"

#include <glog/logging.h>

#include <algorithm>
#include <optional>

#include "model/cuda/cuda_check.h"

namespace xcomp::cuda {

namespace {

// Arena offsets (and so the addresses they give) are multiples of this: what cudaMalloc
// guarantees, more than any kernel or cuBLAS asks.
constexpr size_t kArenaAlignment = 256;

}  // namespace

std::shared_ptr<DeviceAllocator> DeviceAllocator::create(int device, size_t arena_bytes) {
  std::shared_ptr<DeviceAllocator> allocator(new DeviceAllocator(device));
  if (arena_bytes > 0) {
    XCOMP_CUDA_CHECK(cudaSetDevice(device));
    const cudaError_t status = cudaMalloc(&allocator->arena_base_, arena_bytes);
    CHECK(status == cudaSuccess) << "the CUDA memory arena (cuda.arena or XCOMP_CUDA_ARENA): cudaMalloc of " << arena_bytes
                                 << " bytes on device " << device << " failed: " << cudaGetErrorString(status);
    allocator->arena_ = std::make_unique<MemoryArena>(arena_bytes, kArenaAlignment);
  }
  return allocator;
}

DeviceAllocator::~DeviceAllocator() {
  if (arena_base_ != nullptr) {
    const cudaError_t status = cudaFree(arena_base_);
    if (status != cudaSuccess && status != cudaErrorCudartUnloading)
      LOG(ERROR) << "cudaFree of the arena failed at " << __FILE__ << ":" << __LINE__ << ": "
                 << cudaGetErrorString(status);
  }
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
  std::shared_ptr<DeviceAllocator> self = shared_from_this();
  if (arena_) {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::optional<size_t> offset = arena_->allocate(bytes);
    CHECK(offset.has_value()) << "the CUDA memory arena (cuda.arena or XCOMP_CUDA_ARENA, " << arena_->capacity()
                              << " bytes) has no free block of " << bytes << " bytes: " << arena_->in_use()
                              << " in use, the largest free block " << arena_->largest_free_block()
                              << "; give it more, or train with a smaller micro-batch or activations: recompute";
    void* block = static_cast<char*>(arena_base_) + *offset;
    return std::shared_ptr<void>(block, [self, at = *offset](void*) { self->release_from_arena(at); });
  }
  const size_t bucket = bucket_size(bytes);
  void* block = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    bytes_live_ += bucket;
    bytes_live_peak_ = std::max(bytes_live_peak_, bytes_live_);
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
  return std::shared_ptr<void>(block, [self, bucket](void* p) { self->release(p, bucket); });
}

void DeviceAllocator::release(void* block, size_t bucket) {
  std::lock_guard<std::mutex> lock(mutex_);
  free_lists_[bucket].push_back(block);
  bytes_live_ -= bucket;
}

void DeviceAllocator::release_from_arena(size_t offset) {
  std::lock_guard<std::mutex> lock(mutex_);
  arena_->release(offset);
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
  return arena_ ? arena_->capacity() : bytes_reserved_;
}

size_t DeviceAllocator::bytes_needed_at_peak() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return arena_ ? arena_->peak_footprint() : bytes_live_peak_;
}

}  // namespace xcomp::cuda
