#include "model/cpu/attention_probability_cache.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace xcomp {

namespace {

constexpr size_t kMaxSpareEntries = 64;

}  // namespace

size_t AttentionProbabilityCache::bytes_of(const Inputs& inputs, size_t probability_capacity) {
  return (inputs.q_count + inputs.k_count + probability_capacity) * sizeof(float) +
         inputs.valid_count * sizeof(int32_t);
}

bool AttentionProbabilityCache::fits(const Inputs& inputs, size_t count) const {
  return bytes_of(inputs, count) <= max_bytes_;
}

bool AttentionProbabilityCache::matches(const Entry& entry, const Inputs& inputs) {
  // Bit for bit (memcmp): equal bits give equal probabilities, NaNs included.
  return entry.dims == inputs.dims && entry.q.size() == inputs.q_count && entry.k.size() == inputs.k_count &&
         entry.valid.size() == inputs.valid_count &&
         std::memcmp(entry.valid.data(), inputs.valid, inputs.valid_count * sizeof(int32_t)) == 0 &&
         std::memcmp(entry.q.data(), inputs.q, inputs.q_count * sizeof(float)) == 0 &&
         std::memcmp(entry.k.data(), inputs.k, inputs.k_count * sizeof(float)) == 0;
}

AttentionProbabilityCache::Buffer AttentionProbabilityCache::acquire(size_t count) {
  // The smallest recycled buffer that is large enough (shapes repeat every step).
  auto best = recycled_.end();
  for (auto it = recycled_.begin(); it != recycled_.end(); ++it)
    if (it->capacity >= count && (best == recycled_.end() || it->capacity < best->capacity)) best = it;
  if (best != recycled_.end()) {
    Buffer buffer = std::move(*best);
    recycled_.erase(best);
    recycled_bytes_ -= buffer.capacity * sizeof(float);
    return buffer;
  }
  return Buffer{std::unique_ptr<float[]>(new float[count]), count};
}

void AttentionProbabilityCache::recycle(Buffer buffer) {
  if (!buffer) return;
  const size_t bytes = buffer.capacity * sizeof(float);
  if (bytes_ + recycled_bytes_ + bytes > max_bytes_) return;  // freed
  recycled_bytes_ += bytes;
  recycled_.push_back(std::move(buffer));
}

void AttentionProbabilityCache::make_room(size_t incoming) {
  while (!recycled_.empty() && bytes_ + recycled_bytes_ + incoming > max_bytes_) {
    recycled_bytes_ -= recycled_.back().capacity * sizeof(float);
    recycled_.pop_back();
  }
  while (!entries_.empty() && bytes_ + recycled_bytes_ + incoming > max_bytes_) {
    bytes_ -= entries_.front().bytes;
    entries_.pop_front();
  }
}

void AttentionProbabilityCache::put(const Inputs& inputs, Buffer probabilities, size_t count) {
  const size_t bytes = bytes_of(inputs, probabilities.capacity);
  if (bytes > max_bytes_) return;
  make_room(bytes);
  Entry entry;
  if (!spare_entries_.empty()) {
    entry = std::move(spare_entries_.back());
    spare_entries_.pop_back();
  }
  entry.dims = inputs.dims;
  entry.q.assign(inputs.q, inputs.q + inputs.q_count);  // reuses the spare's storage
  entry.k.assign(inputs.k, inputs.k + inputs.k_count);
  entry.valid.assign(inputs.valid, inputs.valid + inputs.valid_count);
  entry.probabilities = std::move(probabilities);
  entry.count = count;
  entry.bytes = bytes;
  bytes_ += bytes;
  entries_.push_back(std::move(entry));
}

AttentionProbabilityCache::Buffer AttentionProbabilityCache::take(const Inputs& inputs, size_t count) {
  // Newest first: a backward follows its forward after the later layers' forwards only.
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    if (it->count != count || !matches(*it, inputs)) continue;
    Buffer probabilities = std::move(it->probabilities);
    bytes_ -= it->bytes;
    auto erased = std::next(it).base();
    if (spare_entries_.size() < kMaxSpareEntries) spare_entries_.push_back(std::move(*erased));
    entries_.erase(erased);
    return probabilities;
  }
  return {};
}

}  // namespace xcomp
