// The data loader: padded micro-batches with lengths and masks, truncation to
// max_text_len, rank slices of the global order, the same batches with and without
// prefetch, resumable state, and shard errors surfacing in the consumer.
#include "io/data_loader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "model/input_error.h"
#include "tests/test_support.h"
#include "tests/unit/shard_test_data.h"

namespace xcomp {
namespace {

constexpr int32_t kPad = 77;

// Three corpus shards of 11, 20 and 9 documents (lengths 1..40): 40 in all.
std::vector<std::string> corpus_shards(const std::string& dir) {
  return {test::write_test_corpus_shard(dir, 0, 11), test::write_test_corpus_shard(dir, 1, 20),
          test::write_test_corpus_shard(dir, 2, 9)};
}

DataLoaderOptions corpus_options(const std::vector<std::string>& shards) {
  DataLoaderOptions o;
  o.shards = shards;
  o.kind = SampleKind::kCorpus;
  o.expect = {test::kTestTokenizerSha256, test::kTestVocab};
  o.seed = 99;
  o.micro_batch = 3;
  o.accumulation = 2;
  o.max_text_len = 16;
  o.pad_id = kPad;
  return o;
}

bool same_tensor(const Tensor& a, const Tensor& b) {
  return a.defined() == b.defined() && (!a.defined() || (a.shape() == b.shape() && a.dtype() == b.dtype() &&
                                                         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0));
}

void expect_same_batch(const MicroBatch& a, const MicroBatch& b) {
  EXPECT_EQ(a.samples, b.samples);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.truncated, b.truncated);
  EXPECT_EQ(a.batch_state, b.batch_state);
  EXPECT_EQ(a.micro_index, b.micro_index);
  for (auto [x, y] : {std::pair{&a.text, &b.text}, {&a.question, &b.question}, {&a.answer, &b.answer}}) {
    EXPECT_TRUE(same_tensor(x->tokens, y->tokens));
    EXPECT_TRUE(same_tensor(x->lengths, y->lengths));
    EXPECT_TRUE(same_tensor(x->mask, y->mask));
  }
}

// Checks one padded block against the sequences it should hold.
void expect_padded(const PaddedTokens& p, const std::vector<std::vector<int32_t>>& sequences) {
  auto rows = static_cast<int64_t>(sequences.size());
  int64_t width = 1;
  for (const auto& s : sequences) width = std::max(width, static_cast<int64_t>(s.size()));
  ASSERT_EQ(p.tokens.shape(), (Shape{rows, width}));
  ASSERT_EQ(p.mask.shape(), (Shape{rows, width}));
  ASSERT_EQ(p.lengths.shape(), (Shape{rows}));
  EXPECT_EQ(p.tokens.dtype(), DType::I32);
  EXPECT_EQ(p.mask.dtype(), DType::I32);
  for (int64_t b = 0; b < rows; ++b) {
    auto length = static_cast<int64_t>(sequences[b].size());
    EXPECT_EQ(p.lengths.data<int32_t>()[b], length);
    for (int64_t t = 0; t < width; ++t) {
      int32_t token = p.tokens.data<int32_t>()[b * width + t];
      int32_t mask = p.mask.data<int32_t>()[b * width + t];
      EXPECT_EQ(token, t < length ? sequences[b][t] : kPad) << b << "," << t;
      EXPECT_EQ(mask, t < length ? 1 : 0) << b << "," << t;
    }
  }
}

TEST(PadSequences, PadsRightAndKeepsOneColumnWhenAllAreEmpty) {
  PaddedTokens p = pad_sequences({{1, 2, 3}, {}, {4}}, kPad);
  expect_padded(p, {{1, 2, 3}, {}, {4}});
  PaddedTokens empty = pad_sequences({{}, {}}, kPad);
  expect_padded(empty, {{}, {}});
}

TEST(DataLoader, CorpusBatchesArePaddedMaskedAndTruncated) {
  std::string dir = test::temp_dir("loader");
  DataLoaderOptions options = corpus_options(corpus_shards(dir));
  options.prefetch = 0;
  DataLoader loader(options);
  EXPECT_EQ(loader.total_samples(), 40);
  EXPECT_EQ(loader.batches_per_epoch(), 6);  // G = 6, 40 / 6
  int truncated = 0, whole = 0;
  for (int i = 0; i < 12; ++i) {
    MicroBatch batch = loader.next();
    ASSERT_EQ(batch.size(), 3);
    EXPECT_EQ(batch.kind, SampleKind::kCorpus);
    EXPECT_FALSE(batch.question.tokens.defined());
    std::vector<std::vector<int32_t>> expected;
    for (int64_t b = 0; b < 3; ++b) {
      const SampleRef& ref = batch.samples[b];
      std::vector<int32_t> doc = test::test_document(ref.shard, ref.index, 40);
      bool cut = doc.size() > 16;
      if (cut) doc.resize(16);
      expected.push_back(doc);
      EXPECT_EQ(batch.truncated[b], cut);
      (cut ? truncated : whole) += 1;
      EXPECT_EQ(batch.ids[b], test::test_document_id(ref.shard, ref.index));
    }
    expect_padded(batch.text, expected);
  }
  EXPECT_GT(truncated, 0);
  EXPECT_GT(whole, 0);
}

TEST(DataLoader, QaBatchesPadContextQuestionAndAnswerSeparately) {
  std::string dir = test::temp_dir("loader");
  DataLoaderOptions options = corpus_options({test::write_test_qa_shard(dir, 0, 10), test::write_test_qa_shard(dir, 1, 7)});
  options.kind = SampleKind::kQa;
  options.max_text_len = 12;
  options.micro_batch = 4;
  options.accumulation = 1;
  options.prefetch = 2;
  DataLoader loader(options);
  for (int i = 0; i < 8; ++i) {
    MicroBatch batch = loader.next();
    EXPECT_EQ(batch.kind, SampleKind::kQa);
    std::vector<std::vector<int32_t>> contexts, questions, answers;
    for (int64_t b = 0; b < batch.size(); ++b) {
      QaExample e = test::test_qa_example(batch.samples[b].shard, batch.samples[b].index);
      EXPECT_EQ(batch.ids[b], e.id);
      EXPECT_EQ(batch.truncated[b], e.context.size() > 12);
      if (e.context.size() > 12) e.context.resize(12);
      contexts.push_back(e.context);
      questions.push_back(e.question);
      answers.push_back(e.answer);
    }
    expect_padded(batch.text, contexts);
    expect_padded(batch.question, questions);
    expect_padded(batch.answer, answers);
  }
}

TEST(DataLoader, PrefetchDeliversTheSameBatchesAsASynchronousRead) {
  std::string dir = test::temp_dir("loader");
  std::vector<std::string> shards = corpus_shards(dir);
  DataLoaderOptions options = corpus_options(shards);
  options.prefetch = 0;
  DataLoader synchronous(options);
  options.prefetch = 4;
  DataLoader prefetching(options);

  // And both equal batches built by hand from the sampler's order.
  std::vector<CorpusShard> opened;
  for (const std::string& path : shards) opened.push_back(CorpusShard::open(path));
  GlobalSampler sampler({11, 20, 9}, options.seed, 6, 1, 0);

  for (int step = 0; step < 15; ++step) {  // two and a half epochs
    SamplerState state = sampler.state();
    std::vector<SampleRef> slice = sampler.next();
    for (int micro = 0; micro < 2; ++micro) {
      MicroBatch expected = make_corpus_micro_batch(
          opened, std::vector<SampleRef>(slice.begin() + 3 * micro, slice.begin() + 3 * micro + 3), 16, kPad);
      expected.batch_state = state;
      expected.micro_index = micro;
      MicroBatch a = synchronous.next(), b = prefetching.next();
      expect_same_batch(a, expected);
      expect_same_batch(b, expected);
      EXPECT_EQ(a.micro_count, 2);
    }
  }
}

// The samples of each of `steps` steps, every rank's micro-batches together in rank order.
std::vector<std::vector<SampleRef>> loader_steps(DataLoaderOptions options, int world, int64_t micro_batch,
                                                 int64_t steps, SamplerState start = {}) {
  options.world_size = world;
  options.micro_batch = micro_batch;
  options.start = start;
  std::vector<std::unique_ptr<DataLoader>> ranks;
  for (int r = 0; r < world; ++r) {
    options.rank = r;
    ranks.push_back(std::make_unique<DataLoader>(options));
  }
  std::vector<std::vector<SampleRef>> out;
  for (int64_t s = 0; s < steps; ++s) {
    std::vector<SampleRef> step;
    for (auto& rank : ranks) {
      for (int64_t m = 0; m < options.accumulation; ++m) {
        MicroBatch batch = rank->next();
        step.insert(step.end(), batch.samples.begin(), batch.samples.end());
      }
    }
    out.push_back(step);
  }
  return out;
}

TEST(DataLoader, RanksTogetherSeeTheSameStepsWhateverTheWorldSize) {
  std::string dir = test::temp_dir("loader");
  DataLoaderOptions options = corpus_options(corpus_shards(dir));
  options.accumulation = 1;
  // G = 12 each time: 12 x 1, 6 x 2, 4 x 3, 3 x 4.
  std::vector<std::vector<SampleRef>> reference = loader_steps(options, 1, 12, 7);
  for (int world : {2, 3, 4}) EXPECT_EQ(loader_steps(options, world, 12 / world, 7), reference) << world;
}

TEST(DataLoader, StateAtAStepBoundaryResumesOnAnotherWorldSize) {
  std::string dir = test::temp_dir("loader");
  DataLoaderOptions options = corpus_options(corpus_shards(dir));
  options.accumulation = 2;
  std::vector<std::vector<SampleRef>> uninterrupted = loader_steps(options, 1, 6, 10);  // G = 12

  options.world_size = 2;
  options.micro_batch = 3;
  options.rank = 0;
  DataLoader rank0(options);
  EXPECT_EQ(rank0.state(), (SamplerState{0, 0, 12, 40}));
  for (int step = 0; step < 4; ++step) {
    rank0.next();
    EXPECT_EQ(rank0.state().next_batch, step % 3) << "mid-step: still the step in progress";
    rank0.next();
  }
  SamplerState saved = rank0.state();  // 40 / 12 = 3 batches an epoch: step 4 is epoch 1, batch 1
  EXPECT_EQ(saved, (SamplerState{1, 1, 12, 40}));

  options.accumulation = 1;  // world 3 x micro 4 x accumulation 1 = 12
  std::vector<std::vector<SampleRef>> resumed = loader_steps(options, 3, 4, 6, saved);
  for (int s = 0; s < 6; ++s) EXPECT_EQ(resumed[s], uninterrupted[4 + s]) << "step " << 4 + s;
}

void expect_next_throws_naming(DataLoader& loader, const std::string& path, const std::string& part) {
  try {
    loader.next();
    ADD_FAILURE() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(DataLoader, ABadShardSurfacesInTheConsumer) {
  std::string dir = test::temp_dir("loader");
  std::vector<std::string> shards = corpus_shards(dir);
  test::RawCorpusShard raw;
  raw.tokens = {5, 6, 7, 500, 9};  // past the vocabulary: found when the data load
  shards.push_back(dir + "/bad.h5");
  test::write_raw_corpus_shard(shards.back(), raw);
  for (int64_t prefetch : {0, 4}) {
    DataLoaderOptions options = corpus_options(shards);
    options.prefetch = prefetch;
    DataLoader loader(options);
    expect_next_throws_naming(loader, shards.back(), "token id 500");
    expect_next_throws_naming(loader, shards.back(), "token id 500");  // and again, not a hang
  }
}

void expect_constructor_error(const DataLoaderOptions& options, const std::string& path, const std::string& part) {
  try {
    DataLoader loader(options);
    ADD_FAILURE() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(DataLoader, RefusesAnotherTokenizerOrKindAtConstruction) {
  std::string dir = test::temp_dir("loader");
  std::vector<std::string> shards = corpus_shards(dir);
  DataLoaderOptions options = corpus_options(shards);
  options.expect.tokenizer_sha256 = std::string(64, 'b');
  expect_constructor_error(options, shards[0], std::string(64, 'b'));

  options = corpus_options(shards);
  options.shards.push_back(test::write_test_qa_shard(dir, 0, 20));
  expect_constructor_error(options, options.shards.back(), "'xcomp-qa' shard");

  options = corpus_options(shards);
  options.expect = {};
  test::RawCorpusShard raw;
  raw.attributes.tokenizer_sha256 = std::string(64, 'c');
  options.shards.push_back(dir + "/other-tokenizer.h5");
  test::write_raw_corpus_shard(options.shards.back(), raw);
  expect_constructor_error(options, options.shards.back(), "differs from");
}

TEST(DataLoader, StopsCleanlyWithAFullQueueOrBeforeAnyBatch) {
  std::string dir = test::temp_dir("loader");
  DataLoaderOptions options = corpus_options(corpus_shards(dir));
  options.prefetch = 2;
  { DataLoader untouched(options); }
  DataLoader loader(options);
  loader.next();
  // Destroyed here while its thread waits for room in the queue.
}

}  // namespace
}  // namespace xcomp
