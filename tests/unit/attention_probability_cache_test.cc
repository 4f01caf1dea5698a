// The CPU attention's probability cache: found only by inputs equal bit for bit, taken
// once, and held under its byte cap (oldest dropped first). What the attention ops do
// with it (the same gradients with and without it) is in cpu_ops_backward_test.cc.
#include "model/cpu/attention_probability_cache.h"

#include <gtest/gtest.h>

#include <vector>

namespace xcomp {
namespace {

struct Call {
  std::vector<float> q, k;
  std::vector<int32_t> valid;
  AttentionProbabilityCache::Inputs inputs() const {
    return {{1, 2, 3}, q.data(), q.size(), k.data(), k.size(), valid.data(), valid.size()};
  }
};

AttentionProbabilityCache::Buffer filled(AttentionProbabilityCache& cache, size_t count, float value) {
  AttentionProbabilityCache::Buffer b = cache.acquire(count);
  for (size_t i = 0; i < count; ++i) b.get()[i] = value;
  return b;
}

TEST(AttentionProbabilityCache, GivesBackWhatWasKeptForEqualInputsOnce) {
  AttentionProbabilityCache cache(1 << 20);
  const Call a{{1, 2, 3}, {4, 5}, {1, 0}};
  cache.put(a.inputs(), filled(cache, 4, 0.25f), 4);
  const Call same = a;  // equal contents at another address
  AttentionProbabilityCache::Buffer got = cache.take(same.inputs(), 4);
  ASSERT_TRUE(got);
  EXPECT_EQ(got.get()[3], 0.25f);
  EXPECT_FALSE(cache.take(same.inputs(), 4)) << "an entry serves one backward";
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(AttentionProbabilityCache, AnyDifferenceInTheInputsMisses) {
  AttentionProbabilityCache cache(1 << 20);
  const Call a{{1, 2, 3}, {4, 5}, {1, 0}};
  cache.put(a.inputs(), filled(cache, 4, 0.5f), 4);
  Call q_changed = a, k_changed = a, valid_changed = a;
  q_changed.q[2] = 3.0000002f;
  k_changed.k[0] = -4;
  valid_changed.valid[1] = 1;
  EXPECT_FALSE(cache.take(q_changed.inputs(), 4));
  EXPECT_FALSE(cache.take(k_changed.inputs(), 4));
  EXPECT_FALSE(cache.take(valid_changed.inputs(), 4));
  AttentionProbabilityCache::Inputs other_dims = a.inputs();
  other_dims.dims[2] = 4;
  EXPECT_FALSE(cache.take(other_dims, 4));
  EXPECT_FALSE(cache.take(a.inputs(), 5)) << "another probability count";
  EXPECT_TRUE(cache.take(a.inputs(), 4));
}

TEST(AttentionProbabilityCache, DropsTheOldestBeyondItsCapAndKeepsNothingTooBig) {
  const Call a{{1}, {1}, {1}}, b{{2}, {1}, {1}}, c{{3}, {1}, {1}};
  // Each entry: q, k and 100 probabilities as floats, one int: 102 * 4 + 4 = 412 bytes.
  AttentionProbabilityCache cache(2 * 412);
  cache.put(a.inputs(), filled(cache, 100, 1), 100);
  cache.put(b.inputs(), filled(cache, 100, 2), 100);
  EXPECT_EQ(cache.entries(), 2u);
  cache.put(c.inputs(), filled(cache, 100, 3), 100);
  EXPECT_EQ(cache.entries(), 2u);
  EXPECT_FALSE(cache.take(a.inputs(), 100)) << "the oldest goes first";
  EXPECT_TRUE(cache.take(b.inputs(), 100));
  EXPECT_TRUE(cache.take(c.inputs(), 100));
  EXPECT_FALSE(cache.fits(a.inputs(), 1000));
  cache.put(a.inputs(), filled(cache, 1000, 1), 1000);
  EXPECT_EQ(cache.entries(), 0u);
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(AttentionProbabilityCache, RecycledBuffersServeLaterForwardsAndGiveWayToEntries) {
  const Call a{{1}, {1}, {1}}, b{{2}, {1}, {1}};
  AttentionProbabilityCache cache(2 * 412);
  cache.put(a.inputs(), filled(cache, 100, 1), 100);
  AttentionProbabilityCache::Buffer back = cache.take(a.inputs(), 100);
  const float* storage = back.get();
  cache.recycle(std::move(back));
  EXPECT_EQ(cache.bytes(), 400u) << "a recycled buffer counts towards the cap";
  AttentionProbabilityCache::Buffer again = cache.acquire(60);  // large enough: reused
  EXPECT_EQ(again.get(), storage);
  EXPECT_EQ(again.capacity, 100u);
  cache.put(b.inputs(), std::move(again), 60);
  AttentionProbabilityCache::Buffer got = cache.take(b.inputs(), 60);
  ASSERT_TRUE(got);
  EXPECT_FALSE(cache.take(b.inputs(), 60));
  cache.recycle(std::move(got));
  // Two full entries fill the cap: the recycled buffer is freed first, no entry lost.
  auto fresh = [] { return AttentionProbabilityCache::Buffer{std::unique_ptr<float[]>(new float[100]), 100}; };
  cache.put(a.inputs(), filled(cache, 100, 1), 100);  // takes the recycled buffer
  cache.recycle(fresh());
  EXPECT_EQ(cache.bytes(), 412u + 400u);
  cache.put(b.inputs(), fresh(), 100);
  EXPECT_EQ(cache.entries(), 2u);
  EXPECT_EQ(cache.bytes(), 2 * 412u);
  EXPECT_TRUE(cache.take(a.inputs(), 100));
  EXPECT_TRUE(cache.take(b.inputs(), 100));
}

}  // namespace
}  // namespace xcomp
