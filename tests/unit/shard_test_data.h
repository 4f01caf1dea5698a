// Small shards for the shard, sampler and loader tests: well-formed ones written by the
// real writers, and malformed ones written part by part (bypassing the writers' checks)
// to exercise the readers' validation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/shards.h"

namespace xcomp::test {

constexpr int64_t kTestVocab = 100;
constexpr const char* kTestTokenizerSha256 = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

ShardAttributes test_attributes(const std::string& split = "train");

// Document d of shard s: length 1 + (7 * d + 3 * s) % max_length, token t is
// (s * 31 + d * 7 + t) % kTestVocab; ids "s<s>-d<d>".
std::vector<int32_t> test_document(int64_t shard, int64_t doc, int64_t max_length);
std::string test_document_id(int64_t shard, int64_t doc);
// Writes `documents` test documents of shard `shard` to dir/corpus-<shard>.h5.
std::string write_test_corpus_shard(const std::string& dir, int64_t shard, int64_t documents,
                                    int64_t max_length = 40);

QaExample test_qa_example(int64_t shard, int64_t index);
std::string write_test_qa_shard(const std::string& dir, int64_t shard, int64_t examples);

// A corpus shard written part by part; each field can be made wrong.
struct RawCorpusShard {
  ShardAttributes attributes = test_attributes();
  std::vector<int32_t> tokens{5, 6, 7, 8, 9};
  std::vector<int64_t> doc_offsets{0, 2, 5};
  std::vector<std::string> doc_ids{"a", "b"};
  std::vector<std::string> doc_dates{"2020-01-01", ""};
  std::string skip_dataset;    // a dataset not to write
  std::string skip_attribute;  // an attribute not to write
  bool vocab_size_as_string = false;
};
void write_raw_corpus_shard(const std::string& path, const RawCorpusShard& raw);

}  // namespace xcomp::test
