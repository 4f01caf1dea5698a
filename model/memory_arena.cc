#include "model/memory_arena.h"

#include <glog/logging.h>

#include <algorithm>
#include <iterator>

namespace xcomp {

MemoryArena::MemoryArena(size_t capacity, size_t alignment) : alignment_(alignment) {
  CHECK(alignment > 0 && (alignment & (alignment - 1)) == 0) << "arena alignment " << alignment;
  capacity_ = capacity / alignment * alignment;
  if (capacity_ > 0) add_free(0, capacity_);
}

void MemoryArena::add_free(size_t offset, size_t size) {
  free_by_offset_.emplace(offset, size);
  free_by_size_.emplace(size, offset);
}

void MemoryArena::remove_free(std::map<size_t, size_t>::iterator block) {
  auto [first, last] = free_by_size_.equal_range(block->second);
  for (auto it = first; it != last; ++it) {
    if (it->second == block->first) {
      free_by_size_.erase(it);
      break;
    }
  }
  free_by_offset_.erase(block);
}

std::optional<size_t> MemoryArena::allocate(size_t bytes) {
  const size_t size = std::max<size_t>(1, (bytes + alignment_ - 1) / alignment_) * alignment_;
  if (size < bytes) return std::nullopt;  // the rounding overflowed
  const auto fit = free_by_size_.lower_bound(size);
  if (fit == free_by_size_.end()) return std::nullopt;
  const size_t offset = fit->second, block = fit->first;
  remove_free(free_by_offset_.find(offset));
  if (block > size) add_free(offset + size, block - size);
  allocated_.emplace(offset, size);
  in_use_ += size;
  peak_in_use_ = std::max(peak_in_use_, in_use_);
  peak_footprint_ = std::max(peak_footprint_, offset + size);
  return offset;
}

void MemoryArena::release(size_t offset) {
  const auto it = allocated_.find(offset);
  CHECK(it != allocated_.end()) << "arena: no allocation at offset " << offset;
  size_t start = offset, size = it->second;
  in_use_ -= size;
  allocated_.erase(it);
  // Merge with the free blocks just after and just before.
  auto next = free_by_offset_.lower_bound(start);
  if (next != free_by_offset_.end() && next->first == start + size) {
    size += next->second;
    remove_free(next);
  }
  auto after = free_by_offset_.lower_bound(start);
  if (after != free_by_offset_.begin()) {
    auto prev = std::prev(after);
    if (prev->first + prev->second == start) {
      start = prev->first;
      size += prev->second;
      remove_free(prev);
    }
  }
  add_free(start, size);
}

size_t MemoryArena::largest_free_block() const {
  return free_by_size_.empty() ? 0 : std::prev(free_by_size_.end())->first;
}

}  // namespace xcomp
