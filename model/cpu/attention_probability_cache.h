// What the CPU attention forward keeps for the backward over the same inputs. Training
// calls attention_backward on exactly the q, k and key_valid of an earlier forward;
// without this the backward recomputes the scores and their softmax, a fifth of the
// stories260K step. An entry is found only by inputs equal bit for bit to the forward's
// (copies are kept and compared), never by address, so a reused buffer or a
// forward-only pass (validation, evaluation) cannot hand a backward the wrong
// probabilities, and a miss only costs the recomputation. Memory is capped, the oldest
// entry dropped first: forwards run layer by layer and backwards in reverse, so the
// entries dropped are the ones needed last.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

namespace xcomp {

class AttentionProbabilityCache {
 public:
  // What determines the probabilities of one attention call.
  struct Inputs {
    std::vector<int64_t> dims;  // any integers that fix the layout (shapes, length)
    const float* q;
    size_t q_count;
    const float* k;
    size_t k_count;
    const int32_t* valid;
    size_t valid_count;
  };

  // Uninitialised: the forward writes every element (zeroing megabytes per call would
  // cost a good part of what the cache saves).
  using Buffer = std::unique_ptr<float[]>;
  static Buffer allocate(size_t count) { return Buffer(new float[count]); }

  explicit AttentionProbabilityCache(size_t max_bytes) : max_bytes_(max_bytes) {}

  // Whether an entry of `probability_count` floats for inputs like these can be kept.
  bool fits(const Inputs& inputs, size_t probability_count) const;
  // Keeps `count` probabilities for `inputs` (copying the inputs), dropping the oldest
  // entries beyond the cap; keeps nothing when this entry alone exceeds it.
  void put(const Inputs& inputs, Buffer probabilities, size_t count);
  // The `count` probabilities kept for exactly these inputs, moved out of the cache
  // (each forward has one backward); null when there are none.
  Buffer take(const Inputs& inputs, size_t count);

  size_t bytes() const { return bytes_; }
  size_t entries() const { return entries_.size(); }

 private:
  struct Entry {
    std::vector<int64_t> dims;
    std::vector<float> q, k;
    std::vector<int32_t> valid;
    Buffer probabilities;
    size_t count = 0;
    size_t bytes = 0;
  };
  static size_t bytes_of(const Inputs& inputs, size_t probability_count);
  static bool matches(const Entry& entry, const Inputs& inputs);

  size_t max_bytes_;
  size_t bytes_ = 0;
  std::deque<Entry> entries_;  // oldest first
};

}  // namespace xcomp
