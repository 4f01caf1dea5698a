// The global sampler: one seeded order per epoch whatever the world size; rank slices
// that partition each global batch; a state that resumes on another world size.
#include "io/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "model/input_error.h"

namespace xcomp {
namespace {

// Shards of 13, 0 (an empty one), 20 and 17 samples: 50 in all.
const std::vector<int64_t> kShards = {13, 0, 20, 17};
constexpr uint64_t kSeed = 1234;
constexpr int64_t kGlobalBatch = 12;  // 4 batches an epoch, 2 samples dropped

// Every step's union of rank slices, for `steps` steps on world size `world`, starting
// at `start`; each step's slices concatenated in rank order.
std::vector<std::vector<SampleRef>> run_steps(int world, int64_t steps, SamplerState start = {}) {
  std::vector<GlobalSampler> ranks;
  for (int r = 0; r < world; ++r) ranks.emplace_back(kShards, kSeed, kGlobalBatch, world, r, start);
  std::vector<std::vector<SampleRef>> out;
  for (int64_t s = 0; s < steps; ++s) {
    std::vector<SampleRef> step;
    for (GlobalSampler& rank : ranks) {
      std::vector<SampleRef> slice = rank.next();
      EXPECT_EQ(static_cast<int64_t>(slice.size()), kGlobalBatch / world);
      step.insert(step.end(), slice.begin(), slice.end());
    }
    out.push_back(step);
  }
  return out;
}

TEST(EpochPermutation, IsAPermutationFixedBySeedAndEpoch) {
  std::vector<int64_t> p = epoch_permutation(1000, 7, 0);
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_EQ(p, epoch_permutation(1000, 7, 0));
  EXPECT_NE(p, epoch_permutation(1000, 7, 1));
  EXPECT_NE(p, epoch_permutation(1000, 8, 0));
  int64_t fixed_points = 0;
  for (int64_t i = 0; i < 1000; ++i) fixed_points += p[i] == i;
  EXPECT_LT(fixed_points, 10);  // about 1 expected for a uniform permutation
  EXPECT_TRUE(epoch_permutation(0, 7, 0).empty());
  EXPECT_EQ(epoch_permutation(1, 7, 0), std::vector<int64_t>{0});
}

TEST(GlobalSampler, RankSlicesPartitionTheSameGlobalBatchForEveryWorldSize) {
  const int64_t steps = 10;  // crosses two epoch boundaries
  std::vector<std::vector<SampleRef>> reference = run_steps(1, steps);
  for (int world : {1, 2, 3, 4}) {
    std::vector<std::vector<SampleRef>> got = run_steps(world, steps);
    for (int64_t s = 0; s < steps; ++s) {
      // Same samples in the same order: the union is the same set, and slices are
      // disjoint because together they are exactly G distinct samples.
      EXPECT_EQ(got[s], reference[s]) << "world " << world << " step " << s;
      std::set<SampleRef> distinct(got[s].begin(), got[s].end());
      EXPECT_EQ(static_cast<int64_t>(distinct.size()), kGlobalBatch) << "world " << world << " step " << s;
    }
  }
}

TEST(GlobalSampler, EverySampleOnceAnEpochExceptTheDroppedTail) {
  GlobalSampler sampler(kShards, kSeed, kGlobalBatch, 1, 0);
  EXPECT_EQ(sampler.total_samples(), 50);
  ASSERT_EQ(sampler.batches_per_epoch(), 4);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::set<SampleRef> seen;
    for (int64_t b = 0; b < 4; ++b) {
      EXPECT_EQ(sampler.state().epoch, epoch);
      EXPECT_EQ(sampler.state().next_batch, b);
      for (const SampleRef& ref : sampler.next()) {
        ASSERT_GE(ref.shard, 0);
        ASSERT_LT(ref.shard, 4);
        ASSERT_NE(ref.shard, 1) << "a sample of the empty shard";
        ASSERT_GE(ref.index, 0);
        ASSERT_LT(ref.index, kShards[ref.shard]);
        EXPECT_TRUE(seen.insert(ref).second) << "a sample twice in epoch " << epoch;
      }
    }
    EXPECT_EQ(seen.size(), 48u);  // 50 - 50 % 12
  }
  EXPECT_EQ(sampler.state().epoch, 3);
}

TEST(GlobalSampler, EpochsHaveDifferentOrders) {
  std::vector<std::vector<SampleRef>> steps = run_steps(1, 8);
  std::vector<SampleRef> epoch0, epoch1;
  for (int s = 0; s < 4; ++s) epoch0.insert(epoch0.end(), steps[s].begin(), steps[s].end());
  for (int s = 4; s < 8; ++s) epoch1.insert(epoch1.end(), steps[s].begin(), steps[s].end());
  EXPECT_NE(epoch0, epoch1);
}

TEST(GlobalSampler, GlobalBatchAtMatchesTheRankSlices) {
  GlobalSampler sampler(kShards, kSeed, kGlobalBatch, 1, 0);
  std::vector<std::vector<SampleRef>> steps = run_steps(3, 6);
  SamplerState state = sampler.state();
  for (int s = 0; s < 6; ++s, state = state.following()) EXPECT_EQ(sampler.global_batch_at(state), steps[s]);
}

TEST(GlobalSampler, SaveOnTwoRanksRestoreOnThreeContinuesTheUninterruptedRun) {
  const int64_t steps = 11, saved_at = 3;  // the restored part crosses epoch boundaries
  std::vector<std::vector<SampleRef>> uninterrupted = run_steps(1, steps);

  std::vector<GlobalSampler> two;
  for (int r = 0; r < 2; ++r) two.emplace_back(kShards, kSeed, kGlobalBatch, 2, r);
  for (int64_t s = 0; s < saved_at; ++s) {
    std::vector<SampleRef> step = two[0].next(), second = two[1].next();
    step.insert(step.end(), second.begin(), second.end());
    EXPECT_EQ(step, uninterrupted[s]);
  }
  EXPECT_EQ(two[0].state(), two[1].state());
  std::string saved = sampler_state_to_json(two[0].state()).dump();

  SamplerState restored = sampler_state_from_json(nlohmann::json::parse(saved), "state.json");
  EXPECT_EQ(restored, two[0].state());
  std::vector<std::vector<SampleRef>> resumed = run_steps(3, steps - saved_at, restored);
  for (int64_t s = saved_at; s < steps; ++s) EXPECT_EQ(resumed[s - saved_at], uninterrupted[s]) << "step " << s;
}

TEST(GlobalSampler, StateFollowsAcrossTheEpochBoundary) {
  SamplerState s{0, 3, kGlobalBatch, 50};
  EXPECT_EQ(s.batches_per_epoch(), 4);
  SamplerState next = s.following();
  EXPECT_EQ(next.epoch, 1);
  EXPECT_EQ(next.next_batch, 0);
}

template <class F>
void expect_input_error(F f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "expected InputError containing " << part;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(GlobalSampler, RefusesSizesThatCannotWork) {
  expect_input_error([] { GlobalSampler(kShards, kSeed, 12, 5, 0); }, "not divisible by the world size 5");
  expect_input_error([] { GlobalSampler(kShards, kSeed, 0, 1, 0); }, "not positive");
  expect_input_error([] { GlobalSampler({3, 4}, kSeed, 12, 1, 0); }, "7 samples, fewer than one global batch of 12");
}

TEST(GlobalSampler, RefusesAStateSavedWithOtherSizes) {
  expect_input_error([] { GlobalSampler(kShards, kSeed, 12, 1, 0, {0, 1, 16, 50}); }, "saved with global batch 16");
  expect_input_error([] { GlobalSampler(kShards, kSeed, 12, 1, 0, {0, 1, 12, 60}); }, "saved over 60 samples");
  expect_input_error([] { GlobalSampler(kShards, kSeed, 12, 1, 0, {0, 4, 12, 50}); }, "outside the 4 batches");
}

TEST(SamplerState, JsonRoundTripAndErrors) {
  SamplerState s{5, 2, 12, 50};
  nlohmann::json j = sampler_state_to_json(s);
  EXPECT_EQ(j.dump(), R"({"epoch":5,"global_batch":12,"next_batch":2,"total_samples":50})");
  EXPECT_EQ(sampler_state_from_json(j, "x"), s);
  nlohmann::json missing = j;
  missing.erase("next_batch");
  expect_input_error([&] { sampler_state_from_json(missing, "ckpt/state.json"); },
                     "ckpt/state.json: sampler state has no 'next_batch'");
  nlohmann::json negative = j;
  negative["epoch"] = -1;
  expect_input_error([&] { sampler_state_from_json(negative, "s.json"); }, "'epoch' is -1");
  expect_input_error([&] { sampler_state_from_json(nlohmann::json::array(), "s.json"); }, "expected an object");
}

}  // namespace
}  // namespace xcomp
