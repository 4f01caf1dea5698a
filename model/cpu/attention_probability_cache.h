// What the CPU attention forward keeps for the backward over the same inputs. Training
// calls attention_backward on exactly the q, k and key_valid of an earlier forward;
// without this the backward recomputes the scores and their softmax. An entry is found
// only by inputs equal bit for bit to the forward's (copies are kept and compared), never
// by address, so a reused buffer or a forward-only pass (validation, evaluation) cannot
// hand a backward the wrong probabilities, and a miss only costs the recomputation.
// Memory is capped, the oldest entry dropped first: forwards run layer by layer and
// backwards in reverse, so the entries dropped are the ones needed last. Buffers and
// input copies are reused from step to step: fresh megabyte allocations each call cost
// page faults worth a good part of what the cache saves.
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

  // Probabilities, uninitialised when handed out: the forward writes every element.
  struct Buffer {
    std::unique_ptr<float[]> data;
    size_t capacity = 0;  // floats
    float* get() const { return data.get(); }
    explicit operator bool() const { return data != nullptr; }
  };

  explicit AttentionProbabilityCache(size_t max_bytes) : max_bytes_(max_bytes) {}

  // Whether an entry of `count` probabilities for inputs like these can be kept.
  bool fits(const Inputs& inputs, size_t count) const;
  // A buffer of at least `count` floats: a recycled one when one is large enough.
  Buffer acquire(size_t count);
  // Keeps the first `count` probabilities of `probabilities` for `inputs` (copying the
  // inputs), dropping recycled buffers and then the oldest entries beyond the cap;
  // keeps nothing when this entry alone exceeds it.
  void put(const Inputs& inputs, Buffer probabilities, size_t count);
  // The `count` probabilities kept for exactly these inputs, moved out of the cache
  // (each forward has one backward); empty when there are none. Hand it back with
  // recycle() when done.
  Buffer take(const Inputs& inputs, size_t count);
  void recycle(Buffer buffer);

  size_t bytes() const { return bytes_ + recycled_bytes_; }  // entries and recycled buffers
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
  static size_t bytes_of(const Inputs& inputs, size_t probability_capacity);
  static bool matches(const Entry& entry, const Inputs& inputs);
  // Frees recycled buffers, then the oldest entries, until `incoming` more bytes fit.
  void make_room(size_t incoming);

  size_t max_bytes_;
  size_t bytes_ = 0;           // of the entries
  size_t recycled_bytes_ = 0;  // of the buffers in recycled_
  std::deque<Entry> entries_;  // oldest first
  std::vector<Buffer> recycled_;
  std::vector<Entry> spare_entries_;  // emptied entries whose vectors keep their storage
};

}  // namespace xcomp
