#include "io/sampler.h"

#include <glog/logging.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <numeric>

#include "model/input_error.h"
#include "model/random.h"

namespace xcomp {

SamplerState SamplerState::following() const {
  CHECK_GT(global_batch, 0) << "sampler state without a global batch size";
  SamplerState next = *this;
  if (++next.next_batch >= batches_per_epoch()) {
    next.next_batch = 0;
    ++next.epoch;
  }
  return next;
}

nlohmann::json sampler_state_to_json(const SamplerState& state) {
  return {{"epoch", state.epoch},
          {"next_batch", state.next_batch},
          {"global_batch", state.global_batch},
          {"total_samples", state.total_samples}};
}

namespace {
int64_t non_negative_field(const nlohmann::json& json, const char* key, const std::string& source) {
  auto it = json.find(key);
  if (it == json.end()) throw_input_error(source, ": sampler state has no '", key, "'");
  if (!it->is_number_integer() || it->get<int64_t>() < 0) {
    throw_input_error(source, ": sampler state '", key, "' is ", it->dump(), ", expected a non-negative integer");
  }
  return it->get<int64_t>();
}
}  // namespace

SamplerState sampler_state_from_json(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) throw_input_error(source, ": sampler state is ", json.dump(), ", expected an object");
  SamplerState state;
  state.epoch = non_negative_field(json, "epoch", source);
  state.next_batch = non_negative_field(json, "next_batch", source);
  state.global_batch = non_negative_field(json, "global_batch", source);
  state.total_samples = non_negative_field(json, "total_samples", source);
  return state;
}

std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  for (int64_t i = n - 1; i > 0; --i) {
    uint64_t r = counter_random_u64(seed, RandomPurpose::kDataOrder, static_cast<uint64_t>(epoch),
                                    static_cast<uint64_t>(i));
    // Multiply-shift maps r onto [0, i]. Its bias, below (i+1)/2^64, is far beneath
    // anything measurable, and unlike rejection it needs exactly one draw per position,
    // which keeps the draw for position i a fixed function of (seed, epoch, i).
    auto j = static_cast<int64_t>((static_cast<unsigned __int128>(r) * static_cast<uint64_t>(i + 1)) >> 64);
    std::swap(order[i], order[j]);
  }
  return order;
}

namespace {
void check_start_state(const SamplerState& start, int64_t global_batch, int64_t total, int64_t batches) {
  if (start.global_batch != 0 && start.global_batch != global_batch) {
    throw_input_error("sampler state: saved with global batch ", start.global_batch, ", this run's is ", global_batch,
                      " (micro batch x accumulation x world size must stay the same to resume)");
  }
  if (start.total_samples != 0 && start.total_samples != total) {
    throw_input_error("sampler state: saved over ", start.total_samples, " samples, these shards hold ", total,
                      " (resume with the same shards)");
  }
  if (start.epoch < 0 || start.next_batch < 0 || start.next_batch >= batches) {
    throw_input_error("sampler state: epoch ", start.epoch, " batch ", start.next_batch, " is outside the ", batches,
                      " batches of an epoch");
  }
}
}  // namespace

GlobalSampler::GlobalSampler(std::vector<int64_t> shard_samples, uint64_t seed, int64_t global_batch,
                             int world_size, int rank, SamplerState start)
    : seed_(seed), global_batch_(global_batch), world_size_(world_size), rank_(rank) {
  CHECK_GE(world_size, 1);
  CHECK(rank >= 0 && rank < world_size) << "rank " << rank << " of " << world_size;
  if (global_batch <= 0) throw_input_error("global batch size ", global_batch, " is not positive");
  if (global_batch % world_size != 0) {
    throw_input_error("global batch size ", global_batch, " is not divisible by the world size ", world_size);
  }
  shard_starts_.push_back(0);
  for (int64_t n : shard_samples) {
    CHECK_GE(n, 0);
    shard_starts_.push_back(shard_starts_.back() + n);
  }
  total_samples_ = shard_starts_.back();
  if (total_samples_ < global_batch) {
    throw_input_error("the shards hold ", total_samples_, " samples, fewer than one global batch of ", global_batch);
  }
  check_start_state(start, global_batch, total_samples_, batches_per_epoch());
  state_ = start;
  state_.global_batch = global_batch;
  state_.total_samples = total_samples_;
}

const std::vector<int64_t>& GlobalSampler::permutation(int64_t epoch) {
  if (epoch != cached_epoch_) {
    cached_permutation_ = epoch_permutation(total_samples_, seed_, epoch);
    cached_epoch_ = epoch;
  }
  return cached_permutation_;
}

SampleRef GlobalSampler::locate(int64_t global_index) const {
  // The last shard start not after the index; empty shards share their start with the
  // next one, and upper_bound skips past them.
  auto it = std::upper_bound(shard_starts_.begin(), shard_starts_.end(), global_index);
  auto shard = static_cast<int64_t>(it - shard_starts_.begin()) - 1;
  return {shard, global_index - shard_starts_[shard]};
}

std::vector<SampleRef> GlobalSampler::global_batch_at(const SamplerState& state) {
  CHECK(state.next_batch >= 0 && state.next_batch < batches_per_epoch());
  const std::vector<int64_t>& order = permutation(state.epoch);
  std::vector<SampleRef> batch;
  batch.reserve(static_cast<size_t>(global_batch_));
  for (int64_t i = 0; i < global_batch_; ++i) batch.push_back(locate(order[state.next_batch * global_batch_ + i]));
  return batch;
}

std::vector<SampleRef> GlobalSampler::next() {
  const std::vector<int64_t>& order = permutation(state_.epoch);
  int64_t begin = state_.next_batch * global_batch_ + rank_ * rank_batch();
  std::vector<SampleRef> slice;
  slice.reserve(static_cast<size_t>(rank_batch()));
  for (int64_t i = 0; i < rank_batch(); ++i) slice.push_back(locate(order[begin + i]));
  state_ = state_.following();
  return slice;
}

}  // namespace xcomp
