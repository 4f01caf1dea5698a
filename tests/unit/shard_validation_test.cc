// Shard readers refuse malformed shards with an InputError that names the file and what
// is wrong: the format, the version, the offsets, token ids, the tokenizer, missing parts,
// damaged bytes and files that are not HDF5 at all.
#include <gtest/gtest.h>

#include <hdf5.h>

#include <filesystem>
#include <utility>

#include "io/shards.h"
#include "model/input_error.h"
#include "tests/test_support.h"
#include "tests/unit/shard_test_data.h"

namespace xcomp {
namespace {

std::string raw_shard(const test::RawCorpusShard& raw, const std::string& name = "bad.h5") {
  std::string path = test::temp_dir("shard-validation") + "/" + name;
  test::write_raw_corpus_shard(path, raw);
  return path;
}

// Expects opening `path` as a corpus shard to fail with a message naming the file and
// containing every one of `parts`.
void expect_corpus_error(const std::string& path, const std::vector<std::string>& parts,
                         const ShardExpectations& expect = {}) {
  try {
    CorpusShard::open(path, expect);
    ADD_FAILURE() << "expected InputError for " << path;
  } catch (const InputError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    for (const std::string& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message;
  }
}

TEST(ShardValidation, AWellFormedRawShardOpens) {
  CorpusShard shard = CorpusShard::open(raw_shard({}), {test::kTestTokenizerSha256, test::kTestVocab});
  EXPECT_EQ(shard.documents(), 2);
  EXPECT_EQ(shard.document(1), (std::vector<int32_t>{7, 8, 9}));
}

TEST(ShardValidation, WrongFormatAttribute) {
  test::RawCorpusShard raw;
  raw.attributes.format = "xcomp-something";
  expect_corpus_error(raw_shard(raw), {"format", "xcomp-something", "xcomp-corpus"});
}

TEST(ShardValidation, QaReaderRefusesACorpusShard) {
  std::string path = raw_shard({});
  try {
    QaShard::open(path);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("xcomp-qa"), std::string::npos) << e.what();
  }
}

TEST(ShardValidation, WrongVersion) {
  test::RawCorpusShard raw;
  raw.attributes.format_version = 2;
  expect_corpus_error(raw_shard(raw), {"format_version 2", "reads version 1"});
}

TEST(ShardValidation, OffsetsNotMonotone) {
  test::RawCorpusShard raw;
  raw.doc_offsets = {0, 4, 2, 5};
  raw.doc_ids = {"a", "b", "c"};
  raw.doc_dates = {"", "", ""};
  expect_corpus_error(raw_shard(raw), {"doc_offsets", "decreases at entry 2"});
}

TEST(ShardValidation, OffsetsNotStartingAtZeroOrNotEndingAtTheTokenCount) {
  test::RawCorpusShard raw;
  raw.doc_offsets = {1, 2, 5};
  expect_corpus_error(raw_shard(raw, "start.h5"), {"doc_offsets", "starts at 1"});
  raw.doc_offsets = {0, 2, 4};
  expect_corpus_error(raw_shard(raw, "end.h5"), {"doc_offsets", "ends at 4", "5 entries"});
}

TEST(ShardValidation, TokenIdPastTheVocabulary) {
  test::RawCorpusShard raw;
  raw.tokens = {5, 6, 7, test::kTestVocab, 9};
  expect_corpus_error(raw_shard(raw), {"token id 100", "entry 3", "sequence 1", "[0, 100)"});
}

TEST(ShardValidation, NegativeTokenId) {
  test::RawCorpusShard raw;
  raw.tokens = {-1, 6, 7, 8, 9};
  expect_corpus_error(raw_shard(raw), {"token id -1"});
}

TEST(ShardValidation, WrongTokenizerHashNamesBothHashes) {
  std::string other = std::string(64, 'a');
  expect_corpus_error(raw_shard({}), {test::kTestTokenizerSha256, other, "test tokenizer"}, {other, -1});
}

TEST(ShardValidation, VocabularyLargerThanTheModels) {
  expect_corpus_error(raw_shard({}), {"vocab_size 100", "(50)"}, {"", 50});
}

TEST(ShardValidation, MissingDataset) {
  for (const char* name : {"tokens", "doc_offsets", "doc_ids", "doc_dates"}) {
    test::RawCorpusShard raw;
    raw.skip_dataset = name;
    expect_corpus_error(raw_shard(raw, std::string("missing-") + name + ".h5"),
                        {"missing dataset '" + std::string(name) + "'"});
  }
}

TEST(ShardValidation, MissingOrMistypedAttribute) {
  test::RawCorpusShard raw;
  raw.skip_attribute = "tokenizer_sha256";
  expect_corpus_error(raw_shard(raw, "missing.h5"), {"missing attribute 'tokenizer_sha256'"});
  raw.skip_attribute.clear();
  raw.vocab_size_as_string = true;
  expect_corpus_error(raw_shard(raw, "typed.h5"), {"attribute 'vocab_size'", "expected an integer, found a string"});
}

TEST(ShardValidation, IdsOfTheWrongLength) {
  test::RawCorpusShard raw;
  raw.doc_ids = {"only one"};
  expect_corpus_error(raw_shard(raw), {"doc_ids", "1 entries for 2 documents"});
}

TEST(ShardValidation, SpecialIdOutsideTheVocabulary) {
  test::RawCorpusShard raw;
  raw.attributes.eos_id = 100;
  expect_corpus_error(raw_shard(raw), {"eos_id", "100"});
}

TEST(ShardValidation, TruncatedFiles) {
  std::string dir = test::temp_dir("shard-validation");
  std::string bytes = test::read_file(test::write_test_corpus_shard(dir, 0, 3000));
  ASSERT_GT(bytes.size(), 4000u);
  for (size_t keep : {size_t{0}, size_t{7}, size_t{100}, size_t{1000}, bytes.size() / 2, bytes.size() - 1}) {
    std::string path = dir + "/truncated-" + std::to_string(keep) + ".h5";
    test::write_file(path, bytes.substr(0, keep));
    expect_corpus_error(path, {});
    try {
      read_shard_summary(path);
      ADD_FAILURE() << "summary of " << path;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
}

// Where the first chunk of a chunked dataset lies in the file, and its stored size.
std::pair<size_t, size_t> first_chunk(const std::string& path, const char* dataset) {
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t data = H5Dopen2(file, dataset, H5P_DEFAULT);
  hid_t space = H5Dget_space(data);
  hsize_t offset[1];
  unsigned filter_mask = 0;
  haddr_t address = 0;
  hsize_t size = 0;
  herr_t status = H5Dget_chunk_info(data, space, 0, offset, &filter_mask, &address, &size);
  H5Sclose(space);
  H5Dclose(data);
  H5Fclose(file);
  EXPECT_GE(status, 0);
  return {static_cast<size_t>(address), static_cast<size_t>(size)};
}

TEST(ShardValidation, CorruptCompressedTokens) {
  // Changed bytes inside a deflate-compressed chunk fail zlib's checksum or decoding.
  std::string dir = test::temp_dir("shard-validation");
  std::string original = test::write_test_corpus_shard(dir, 0, 3000);
  auto [address, size] = first_chunk(original, "tokens");
  std::string bytes = test::read_file(original);
  ASSERT_GT(size, 100u);
  ASSERT_LE(address + size, bytes.size());
  for (size_t i = address + size / 2; i < address + size / 2 + 16; ++i) bytes[i] = static_cast<char>(~bytes[i]);
  std::string path = dir + "/corrupt.h5";
  test::write_file(path, bytes);
  expect_corpus_error(path, {"dataset 'tokens'", "H5Dread"});
}

TEST(ShardValidation, NotAnHdf5File) {
  std::string path = test::temp_dir("shard-validation") + "/text.h5";
  test::write_file(path, "this is not HDF5, just some text that is long enough to look like a file\n");
  expect_corpus_error(path, {"not an HDF5 file"});
}

TEST(ShardValidation, MissingFile) {
  std::string path = test::temp_dir("shard-validation") + "/absent.h5";
  expect_corpus_error(path, {"cannot open"});
}

}  // namespace
}  // namespace xcomp
