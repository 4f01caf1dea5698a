// The device memory allocator of one CUDA backend. The model allocates many short-lived
// temporaries per step; cudaMalloc/cudaFree synchronise the device and cost
// microseconds to milliseconds each, so memory is reused instead of returned to the
// driver, in one of two ways:
//  - caching (the default): freed blocks go to size-bucketed free lists, each size
//    keeping its own blocks (a block of one size never serves another);
//  - an arena sized at start-up (XCOMP_CUDA_ARENA, read by CudaOps): one cudaMalloc, then
//    best-fit sub-allocation with splitting and merging (model/memory_arena.h), so every
//    size shares one reservation and running out is a clear error at a known size.
// Blocks are reused in the order the owning backend's single stream runs, so a block
// freed while a kernel still reads it is only handed to work queued after that kernel.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "model/memory_arena.h"

namespace xcomp::cuda {

class DeviceAllocator : public std::enable_shared_from_this<DeviceAllocator> {
 public:
  // Blocks are allocated on `device` (the caller makes it current); arena_bytes > 0
  // reserves an arena of that size now (a CHECK failure if the device cannot).
  static std::shared_ptr<DeviceAllocator> create(int device, size_t arena_bytes = 0);
  ~DeviceAllocator();
  DeviceAllocator(const DeviceAllocator&) = delete;
  DeviceAllocator& operator=(const DeviceAllocator&) = delete;

  // At least `bytes` of device memory, back in the free lists when the last owner lets
  // go (the owner keeps this allocator alive). Empty for zero bytes.
  std::shared_ptr<void> allocate(size_t bytes);

  size_t bytes_reserved() const;  // held from the driver, in use or cached (the arena: all of it)
  // The most memory the allocations needed at once: caching, the largest sum of live
  // (bucket-rounded) blocks, what it would hold if sizes shared their cache; the arena,
  // the highest end of any allocation in it, its fragmentation included.
  size_t bytes_needed_at_peak() const;
  size_t arena_bytes() const { return arena_ ? arena_->capacity() : 0; }  // 0: caching

  // The bucket a request falls in: powers of two up to 1 MiB, then multiples of 2 MiB,
  // so repeated shapes hit the same list and rounding wastes little on big tensors.
  static size_t bucket_size(size_t bytes);

 private:
  explicit DeviceAllocator(int device) : device_(device) {}
  void release(void* block, size_t bucket);
  void release_from_arena(size_t offset);
  // Returns every cached block to the driver (only when an allocation fails).
  void release_cached_locked();

  int device_;
  mutable std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_lists_;
  size_t bytes_reserved_ = 0;
  size_t bytes_live_ = 0, bytes_live_peak_ = 0;  // caching: bucket-rounded live blocks
  std::unique_ptr<MemoryArena> arena_;          // arena mode: the bookkeeping of...
  void* arena_base_ = nullptr;                  // ...this one reservation
};

}  // namespace xcomp::cuda
