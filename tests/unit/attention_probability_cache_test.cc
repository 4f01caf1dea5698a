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

AttentionProbabilityCache::Buffer filled(size_t count, float value) {
  AttentionProbabilityCache::Buffer b = AttentionProbabilityCache::allocate(count);
  for (size_t i = 0; i < count; ++i) b[i] = value;
  return b;
}

TEST(AttentionProbabilityCache, GivesBackWhatWasKeptForEqualInputsOnce) {
  AttentionProbabilityCache cache(1 << 20);
  const Call a{{1, 2, 3}, {4, 5}, {1, 0}};
  cache.put(a.inputs(), filled(4, 0.25f), 4);
  const Call same = a;  // equal contents at another address
  AttentionProbabilityCache::Buffer got = cache.take(same.inputs(), 4);
  ASSERT_TRUE(got);
  EXPECT_EQ(got[3], 0.25f);
  EXPECT_FALSE(cache.take(same.inputs(), 4)) << "an entry serves one backward";
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(AttentionProbabilityCache, AnyDifferenceInTheInputsMisses) {
  AttentionProbabilityCache cache(1 << 20);
  const Call a{{1, 2, 3}, {4, 5}, {1, 0}};
  cache.put(a.inputs(), filled(4, 0.5f), 4);
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
  // Each entry: q, k and 100 probabilities as floats, one int: 103 * 4 + 4 = 416 bytes.
  AttentionProbabilityCache cache(2 * 416);
  cache.put(a.inputs(), filled(100, 1), 100);
  cache.put(b.inputs(), filled(100, 2), 100);
  EXPECT_EQ(cache.entries(), 2u);
  cache.put(c.inputs(), filled(100, 3), 100);
  EXPECT_EQ(cache.entries(), 2u);
  EXPECT_FALSE(cache.take(a.inputs(), 100)) << "the oldest goes first";
  EXPECT_TRUE(cache.take(b.inputs(), 100));
  EXPECT_TRUE(cache.take(c.inputs(), 100));
  EXPECT_FALSE(cache.fits(a.inputs(), 1000));
  cache.put(a.inputs(), filled(1000, 1), 1000);
  EXPECT_EQ(cache.entries(), 0u);
  EXPECT_EQ(cache.bytes(), 0u);
}

}  // namespace
}  // namespace xcomp
