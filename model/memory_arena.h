// Sub-allocation of one block of memory reserved up front (the CUDA backend's arena,
// model/cuda/device_allocator.h): offsets in [0, capacity), best fit among the free
// blocks, the rest of a block split off and freed blocks merged with free neighbours, so
// tensors of every size share one reservation instead of each size keeping its own cache.
// Host bookkeeping only: it never touches the memory it hands out.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <unordered_map>

namespace xcomp {

class MemoryArena {
 public:
  // Offsets and sizes are multiples of `alignment` (a power of two).
  explicit MemoryArena(size_t capacity, size_t alignment = 256);

  // The offset of `bytes` (rounded up to the alignment; 0 bytes take one unit), or
  // nothing when no free block is large enough.
  std::optional<size_t> allocate(size_t bytes);
  // Frees the allocation at `offset` (a CHECK failure for any other offset).
  void release(size_t offset);

  size_t capacity() const { return capacity_; }
  size_t in_use() const { return in_use_; }
  // The most bytes allocated at once, and the highest end of any allocation: what a
  // reservation needs to hold the same sequence again (the second includes the holes
  // fragmentation left below it).
  size_t peak_in_use() const { return peak_in_use_; }
  size_t peak_footprint() const { return peak_footprint_; }
  size_t largest_free_block() const;

 private:
  void add_free(size_t offset, size_t size);
  void remove_free(std::map<size_t, size_t>::iterator block);

  size_t capacity_, alignment_;
  std::map<size_t, size_t> free_by_offset_;       // offset -> size
  std::multimap<size_t, size_t> free_by_size_;    // size -> offset, for the best fit
  std::unordered_map<size_t, size_t> allocated_;  // offset -> size
  size_t in_use_ = 0, peak_in_use_ = 0, peak_footprint_ = 0;
};

}  // namespace xcomp
