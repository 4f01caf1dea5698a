#include "model/cpu/attention_probability_cache.h"

#include <cstring>
#include <utility>

namespace xcomp {

size_t AttentionProbabilityCache::bytes_of(const Inputs& inputs, size_t probability_count) {
  return (inputs.q_count + inputs.k_count + probability_count) * sizeof(float) + inputs.valid_count * sizeof(int32_t);
}

bool AttentionProbabilityCache::fits(const Inputs& inputs, size_t probability_count) const {
  return bytes_of(inputs, probability_count) <= max_bytes_;
}

bool AttentionProbabilityCache::matches(const Entry& entry, const Inputs& inputs) {
  // Bit for bit (memcmp): equal bits give equal probabilities, NaNs included.
  return entry.dims == inputs.dims && entry.q.size() == inputs.q_count && entry.k.size() == inputs.k_count &&
         entry.valid.size() == inputs.valid_count &&
         std::memcmp(entry.valid.data(), inputs.valid, inputs.valid_count * sizeof(int32_t)) == 0 &&
         std::memcmp(entry.q.data(), inputs.q, inputs.q_count * sizeof(float)) == 0 &&
         std::memcmp(entry.k.data(), inputs.k, inputs.k_count * sizeof(float)) == 0;
}

void AttentionProbabilityCache::put(const Inputs& inputs, Buffer probabilities, size_t count) {
  const size_t bytes = bytes_of(inputs, count);
  if (bytes > max_bytes_) return;
  while (!entries_.empty() && bytes_ + bytes > max_bytes_) {
    bytes_ -= entries_.front().bytes;
    entries_.pop_front();
  }
  Entry entry;
  entry.dims = inputs.dims;
  entry.q.assign(inputs.q, inputs.q + inputs.q_count);
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
    entries_.erase(std::next(it).base());
    return probabilities;
  }
  return {};
}

}  // namespace xcomp
