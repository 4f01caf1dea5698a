// What an evaluation job scores, read from prepared HDF5 shards in shard order (no
// shuffling: the same arguments give the same items on every run and every rank).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/shards.h"

namespace xcomp {

struct RegenerationItem {
  std::string id;
  std::vector<int32_t> text;  // exactly the evaluated length
};

// The first `limit` documents (every one for limit 0) with at least `text_len` tokens,
// each cut to its first text_len tokens, so every item of a length bucket has the same
// length. InputError for a missing or mismatched shard.
std::vector<RegenerationItem> read_regeneration_items(const std::vector<std::string>& shards,
                                                      const ShardExpectations& expect, int64_t text_len, int64_t limit);

struct QaItem {
  std::string id;
  std::string dataset;           // the shard's source file name without directory and extension
  std::vector<int32_t> context;  // cut to max_text_len tokens
  bool truncated = false;
  std::vector<int32_t> question;
  std::vector<std::string> references;  // empty: unanswerable (SQuAD v2.0)
};

std::vector<QaItem> read_qa_items(const std::vector<std::string>& shards, const ShardExpectations& expect,
                                  int64_t max_text_len, int64_t limit);

// The items rank `rank` of `world` evaluates: every world-th one from `rank`. Results are
// put back in item order by whoever gathers them.
template <typename T>
std::vector<size_t> items_of_rank(const std::vector<T>& items, int rank, int world) {
  std::vector<size_t> indices;
  for (size_t i = static_cast<size_t>(rank); i < items.size(); i += static_cast<size_t>(world)) indices.push_back(i);
  return indices;
}

}  // namespace xcomp
