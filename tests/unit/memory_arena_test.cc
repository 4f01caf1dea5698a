// MemoryArena: best fit, splitting and merging, exhaustion, and its peaks; and a random
// sequence of allocations and releases that never overlaps and ends as one free block.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

#include "model/memory_arena.h"

namespace xcomp {
namespace {

constexpr size_t kUnit = 256;

TEST(MemoryArena, RoundsToTheAlignmentAndTakesTheBestFittingHole) {
  MemoryArena arena(16 * kUnit);
  const size_t a = *arena.allocate(3 * kUnit), b = *arena.allocate(1), c = *arena.allocate(5 * kUnit);
  const size_t d = *arena.allocate(1 * kUnit);
  EXPECT_EQ(a, 0u);
  EXPECT_EQ(b, 3 * kUnit);  // 1 byte takes one unit
  EXPECT_EQ(c, 4 * kUnit);
  EXPECT_EQ(d, 9 * kUnit);
  arena.release(a);  // holes of 3 units at 0 and 6 at the end (10..16)
  EXPECT_EQ(*arena.allocate(2 * kUnit), 0u);  // the 3-unit hole fits best
  EXPECT_EQ(*arena.allocate(4 * kUnit), 10 * kUnit);
  EXPECT_EQ(arena.in_use(), (2 + 1 + 5 + 1 + 4) * kUnit);
}

TEST(MemoryArena, FreedNeighboursMergeIntoOneBlock) {
  MemoryArena arena(8 * kUnit);
  const size_t a = *arena.allocate(2 * kUnit), b = *arena.allocate(2 * kUnit), c = *arena.allocate(2 * kUnit);
  EXPECT_EQ(arena.largest_free_block(), 2 * kUnit);
  arena.release(b);
  arena.release(a);  // merges with b's block after it
  EXPECT_EQ(arena.largest_free_block(), 4 * kUnit);
  EXPECT_EQ(*arena.allocate(4 * kUnit), 0u);
  arena.release(0);
  arena.release(c);  // merges with the blocks before and after it
  EXPECT_EQ(arena.largest_free_block(), 8 * kUnit);
  EXPECT_EQ(arena.in_use(), 0u);
}

TEST(MemoryArena, ExhaustionIsNothingAndTheBlockComesBackWhenFreed) {
  MemoryArena arena(4 * kUnit);
  const size_t a = *arena.allocate(3 * kUnit);
  EXPECT_FALSE(arena.allocate(2 * kUnit).has_value());
  EXPECT_FALSE(arena.allocate(~size_t{0}).has_value());  // no overflow in the rounding
  arena.release(a);
  EXPECT_EQ(*arena.allocate(4 * kUnit), 0u);
}

TEST(MemoryArena, PeaksCountTheMostInUseAndTheHighestEnd) {
  MemoryArena arena(10 * kUnit);
  const size_t a = *arena.allocate(4 * kUnit), b = *arena.allocate(4 * kUnit);
  arena.release(a);
  const size_t c = *arena.allocate(3 * kUnit);  // into a's hole (the 2 units at the end are too few)
  EXPECT_EQ(c, 0u);
  EXPECT_EQ(arena.peak_in_use(), 8 * kUnit);
  EXPECT_EQ(arena.peak_footprint(), 8 * kUnit);
  arena.release(b);
  arena.release(c);
  EXPECT_EQ(arena.in_use(), 0u);
  EXPECT_EQ(arena.peak_in_use(), 8 * kUnit);
}

TEST(MemoryArena, RandomAllocationsNeverOverlapAndAllFreedIsOneBlock) {
  const size_t capacity = 1 << 20;
  MemoryArena arena(capacity);
  std::mt19937 gen(7);
  std::map<size_t, size_t> live;  // offset -> bytes asked
  for (int step = 0; step < 20000; ++step) {
    if (!live.empty() && (gen() % 2 == 0 || live.size() > 200)) {
      auto it = live.begin();
      std::advance(it, gen() % live.size());
      arena.release(it->first);
      live.erase(it);
      continue;
    }
    const size_t bytes = 1 + gen() % 20000;
    const auto offset = arena.allocate(bytes);
    if (!offset) continue;
    ASSERT_EQ(*offset % kUnit, 0u);
    ASSERT_LE(*offset + bytes, capacity);
    const auto next = live.lower_bound(*offset);
    if (next != live.end()) {
      ASSERT_LE(*offset + bytes, next->first) << "overlaps the next allocation";
    }
    if (next != live.begin()) {
      const auto prev = std::prev(next);
      ASSERT_LE(prev->first + prev->second, *offset) << "overlaps the previous allocation";
    }
    live.emplace(*offset, bytes);
  }
  for (const auto& [offset, bytes] : live) arena.release(offset);
  EXPECT_EQ(arena.in_use(), 0u);
  EXPECT_EQ(arena.largest_free_block(), capacity);
  EXPECT_LE(arena.peak_in_use(), arena.peak_footprint());
}

}  // namespace
}  // namespace xcomp
