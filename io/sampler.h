// The global order of training samples. Each epoch is one seeded permutation over every
// sample of every shard (shards concatenated in their given order); global batch k of
// the epoch is permutation[k*G, (k+1)*G). The last partial batch of an epoch is dropped,
// so every step sees exactly G samples (those few samples come back in other epochs, in
// other positions). Rank r of W takes the contiguous slice [r*G/W, (r+1)*G/W) of each
// global batch, so the set of samples seen at a step, and their order within the batch,
// do not depend on W: a run can resume on another world size with the same G.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace xcomp {

// Where the sampler stands: the next global batch is batch `next_batch` of epoch
// `epoch`. `global_batch` and `total_samples` record what the position means; a sampler
// restored from a state refuses other values (0: not recorded, not checked).
struct SamplerState {
  int64_t epoch = 0;
  int64_t next_batch = 0;
  int64_t global_batch = 0;
  int64_t total_samples = 0;

  int64_t batches_per_epoch() const { return global_batch > 0 ? total_samples / global_batch : 0; }
  // The state one global batch later (CHECKs that global_batch and total_samples are set).
  SamplerState following() const;
  bool operator==(const SamplerState& o) const {
    return epoch == o.epoch && next_batch == o.next_batch && global_batch == o.global_batch &&
           total_samples == o.total_samples;
  }
  bool operator!=(const SamplerState& o) const { return !(*this == o); }
};

// {"epoch": .., "next_batch": .., "global_batch": .., "total_samples": ..}; checkpoints
// embed it in state.json. Reading throws InputError naming `source` and the bad key.
nlohmann::json sampler_state_to_json(const SamplerState& state);
SamplerState sampler_state_from_json(const nlohmann::json& json, const std::string& source);

// A sample: its shard (index into the shard list) and its index within that shard.
struct SampleRef {
  int64_t shard = 0;
  int64_t index = 0;
  bool operator==(const SampleRef& o) const { return shard == o.shard && index == o.index; }
  bool operator!=(const SampleRef& o) const { return !(*this == o); }
  bool operator<(const SampleRef& o) const { return shard != o.shard ? shard < o.shard : index < o.index; }
};

// The permutation of [0, n) for one epoch: Fisher-Yates, position i's swap partner drawn
// from counter_random_u64(seed, kDataOrder, epoch, i).
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch);

class GlobalSampler {
 public:
  // `shard_samples`: each shard's sample count, in the fixed shard order. InputError when
  // G is not positive or not divisible by W, when the shards hold fewer than G samples,
  // or when `start` was saved with another G or another total. CHECKs rank < world_size.
  GlobalSampler(std::vector<int64_t> shard_samples, uint64_t seed, int64_t global_batch, int world_size, int rank,
                SamplerState start = {});

  int64_t total_samples() const { return total_samples_; }
  int64_t global_batch() const { return global_batch_; }
  int64_t rank_batch() const { return global_batch_ / world_size_; }
  int64_t batches_per_epoch() const { return total_samples_ / global_batch_; }

  // The state of the batch next() returns next.
  const SamplerState& state() const { return state_; }
  // This rank's slice of the next global batch (rank_batch() samples, in batch order);
  // then moves to the following batch (the next epoch after the last full batch).
  std::vector<SampleRef> next();
  // Every rank's samples of the global batch at `state`, in order (for tests and tools).
  std::vector<SampleRef> global_batch_at(const SamplerState& state);

 private:
  const std::vector<int64_t>& permutation(int64_t epoch);
  SampleRef locate(int64_t global_index) const;

  std::vector<int64_t> shard_starts_;  // cumulative counts: shard s holds [starts[s], starts[s+1])
  uint64_t seed_;
  int64_t global_batch_;
  int world_size_;
  int rank_;
  int64_t total_samples_ = 0;
  SamplerState state_;
  int64_t cached_epoch_ = -1;  // the epoch whose permutation is cached
  std::vector<int64_t> cached_permutation_;
};

}  // namespace xcomp
