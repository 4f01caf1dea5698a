// HDF5 shards: round trips of both kinds through the writers and readers, identical bytes
// for identical content, and the temporary file that makes a shard appear whole or not
// at all.
#include "io/shards.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "model/input_error.h"
#include "tests/test_support.h"
#include "tests/unit/shard_test_data.h"

namespace xcomp {
namespace {
namespace fs = std::filesystem;

void expect_attributes_equal(const ShardAttributes& a, const ShardAttributes& b) {
  EXPECT_EQ(a.format, b.format);
  EXPECT_EQ(a.format_version, b.format_version);
  EXPECT_EQ(a.tokenizer_name, b.tokenizer_name);
  EXPECT_EQ(a.tokenizer_sha256, b.tokenizer_sha256);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.bos_id, b.bos_id);
  EXPECT_EQ(a.eos_id, b.eos_id);
  EXPECT_EQ(a.source_file, b.source_file);
  EXPECT_EQ(a.split, b.split);
}

TEST(CorpusShard, RoundTripsDocumentsIdsDatesAndAttributes) {
  std::string path = test::temp_dir("shards") + "/corpus.h5";
  // Crosses the 64K-element chunk boundary, and holds an empty document.
  std::vector<int32_t> long_doc;
  for (int i = 0; i < 70001; ++i) long_doc.push_back(i % test::kTestVocab);
  std::vector<std::vector<int32_t>> docs = {{3, 4, 5}, {}, long_doc, {99}};
  std::vector<std::string> ids = {"2101.00001", "plain.txt:2", "ünïcödé id", ""};
  std::vector<std::string> dates = {"2021-01-01", "", "1999-12-31", "2000-02-29"};
  ShardAttributes attributes = test::test_attributes();
  {
    CorpusShardWriter writer(path, attributes);
    for (size_t i = 0; i < docs.size(); ++i) writer.add(ids[i], dates[i], docs[i]);
    EXPECT_EQ(writer.documents(), 4);
    EXPECT_EQ(writer.tokens(), 3 + 70001 + 1);
    writer.close();
  }
  CorpusShard shard = CorpusShard::open(path, {test::kTestTokenizerSha256, test::kTestVocab});
  EXPECT_EQ(shard.path(), path);
  attributes.format = kCorpusShardFormat;
  expect_attributes_equal(shard.attributes(), attributes);
  ASSERT_EQ(shard.documents(), 4);
  EXPECT_EQ(shard.tokens(), 3 + 70001 + 1);
  for (int64_t d = 0; d < 4; ++d) {
    EXPECT_EQ(shard.document(d), docs[d]) << d;
    EXPECT_EQ(shard.document_length(d), static_cast<int64_t>(docs[d].size()));
    EXPECT_EQ(shard.document_id(d), ids[d]);
    EXPECT_EQ(shard.document_date(d), dates[d]);
  }
  EXPECT_EQ(shard.document_data(3)[0], 99);
}

TEST(CorpusShard, RoundTripsAnEmptyShard) {
  std::string path = test::temp_dir("shards") + "/empty.h5";
  CorpusShardWriter writer(path, test::test_attributes());
  writer.close();
  CorpusShard shard = CorpusShard::open(path);
  EXPECT_EQ(shard.documents(), 0);
  EXPECT_EQ(shard.tokens(), 0);
  EXPECT_EQ(read_shard_summary(path).samples, 0);
}

TEST(QaShard, RoundTripsExamplesAndReferences) {
  std::string dir = test::temp_dir("shards");
  std::string path = test::write_test_qa_shard(dir, 2, 9);
  QaShard shard = QaShard::open(path, {test::kTestTokenizerSha256, test::kTestVocab});
  ShardAttributes attributes = test::test_attributes("validation");
  attributes.format = kQaShardFormat;
  expect_attributes_equal(shard.attributes(), attributes);
  ASSERT_EQ(shard.examples(), 9);
  int64_t tokens = 0;
  for (int64_t i = 0; i < 9; ++i) {
    QaExample expected = test::test_qa_example(2, i);
    QaExample got = shard.example(i);
    EXPECT_EQ(got.id, expected.id);
    EXPECT_EQ(got.context, expected.context);
    EXPECT_EQ(got.question, expected.question);
    EXPECT_EQ(got.answer, expected.answer);
    EXPECT_EQ(got.references, expected.references) << i;
    tokens += static_cast<int64_t>(expected.context.size() + expected.question.size() + expected.answer.size());
  }
  EXPECT_TRUE(shard.example(3).answer.empty());
  EXPECT_TRUE(shard.example(3).references.empty());
  EXPECT_EQ(shard.tokens(), tokens);
}

TEST(ShardSummary, ReadsCountsAndAttributesOfBothKinds) {
  std::string dir = test::temp_dir("shards");
  ShardSummary corpus = read_shard_summary(test::write_test_corpus_shard(dir, 0, 17));
  EXPECT_EQ(corpus.attributes.format, kCorpusShardFormat);
  EXPECT_EQ(corpus.samples, 17);
  ShardSummary qa = read_shard_summary(test::write_test_qa_shard(dir, 0, 6), {test::kTestTokenizerSha256, 100});
  EXPECT_EQ(qa.attributes.format, kQaShardFormat);
  EXPECT_EQ(qa.samples, 6);
}

TEST(ShardWriters, WriteIdenticalBytesForIdenticalContent) {
  std::string first = test::temp_dir("shards-a"), second = test::temp_dir("shards-b");
  test::write_test_corpus_shard(first, 1, 300);
  test::write_test_qa_shard(first, 1, 40);
  // Object times have one-second resolution: a later second would show up if recorded.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  test::write_test_corpus_shard(second, 1, 300);
  test::write_test_qa_shard(second, 1, 40);
  for (const char* name : {"/corpus-1.h5", "/qa-1.h5"}) {
    std::string a = test::read_file(first + name), b = test::read_file(second + name);
    EXPECT_GT(a.size(), 1000u) << name;
    EXPECT_TRUE(a == b) << name << " differs between two writes";
  }
}

TEST(ShardWriters, TemporaryFileIsRenamedOnClose) {
  std::string path = test::temp_dir("shards") + "/c.h5";
  CorpusShardWriter writer(path, test::test_attributes());
  writer.add("a", "", {1, 2, 3});
  EXPECT_TRUE(fs::exists(path + ".tmp"));
  EXPECT_FALSE(fs::exists(path));
  writer.close();
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_TRUE(fs::exists(path));
}

TEST(ShardWriters, WriterDestroyedWithoutCloseRemovesTheTemporaryFile) {
  std::string dir = test::temp_dir("shards");
  {
    CorpusShardWriter writer(dir + "/c.h5", test::test_attributes());
    writer.add("a", "", {1, 2, 3});
    EXPECT_TRUE(fs::exists(dir + "/c.h5.tmp"));
  }
  {
    QaShardWriter writer(dir + "/q.h5", test::test_attributes());
    writer.add(test::test_qa_example(0, 0));
    EXPECT_TRUE(fs::exists(dir + "/q.h5.tmp"));
  }
  EXPECT_TRUE(fs::is_empty(dir)) << "a writer left something behind";
}

TEST(ShardWriters, UnwritableDirectoryFailsAtConstructionNamingTheFile) {
  std::string path = test::temp_dir("shards") + "/no/such/dir/c.h5";
  try {
    CorpusShardWriter writer(path, test::test_attributes());
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ".tmp"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace xcomp
