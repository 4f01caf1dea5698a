// A caching allocator for one CUDA device. The model allocates many short-lived
// temporaries per step; cudaMalloc/cudaFree synchronise the device and cost
// microseconds to milliseconds each, so freed blocks go to size-bucketed free lists and
// are reused instead of returned to the driver. Blocks are reused in the order the owning
// backend's single stream runs, so a block freed while a kernel still reads it is only
// handed to work queued after that kernel.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace xcomp::cuda {

class DeviceAllocator : public std::enable_shared_from_this<DeviceAllocator> {
 public:
  // Blocks are allocated on `device` (the caller makes it current).
  static std::shared_ptr<DeviceAllocator> create(int device);
  ~DeviceAllocator();
  DeviceAllocator(const DeviceAllocator&) = delete;
  DeviceAllocator& operator=(const DeviceAllocator&) = delete;

  // At least `bytes` of device memory, back in the free lists when the last owner lets
  // go (the owner keeps this allocator alive). Empty for zero bytes.
  std::shared_ptr<void> allocate(size_t bytes);

  size_t bytes_reserved() const;  // held from the driver, in use or cached

  // The bucket a request falls in: powers of two up to 1 MiB, then multiples of 2 MiB,
  // so repeated shapes hit the same list and rounding wastes little on big tensors.
  static size_t bucket_size(size_t bytes);

 private:
  explicit DeviceAllocator(int device) : device_(device) {}
  void release(void* block, size_t bucket);
  // Returns every cached block to the driver (only when an allocation fails).
  void release_cached_locked();

  int device_;
  mutable std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_lists_;
  size_t bytes_reserved_ = 0;
};

}  // namespace xcomp::cuda
