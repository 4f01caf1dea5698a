// The QA decoder layouts of trainer/objective.h, token by token: the compressors' prompt
// + answer, and mode none's [BOS] + context + prompt + answer (the full-context prompt
// the evaluation's baseline uses), each with targets on answer + [EOS] only.
#include "trainer/objective.h"

#include <gtest/gtest.h>

#include <vector>

namespace xcomp {
namespace {

constexpr int32_t kBos = 1, kEos = 2, kPad = 0;

// "Question: " = {10, 11}, " Answer: " = {12}.
ObjectiveTokens tokens(int32_t bos = kBos) {
  ObjectiveTokens t;
  t.bos = bos;
  t.eos = kEos;
  t.pad = kPad;
  t.question_prefix = {10, 11};
  t.answer_prefix = {12};
  return t;
}

// Two QA samples: contexts of 3 and 1 tokens, questions of 1 and 2, answers of 2 and 1.
MicroBatch qa_micro_batch() {
  MicroBatch b;
  b.kind = SampleKind::kQa;
  b.text = pad_sequences({{30, 31, 32}, {33}}, kPad);
  b.question = pad_sequences({{40}, {41, 42}}, kPad);
  b.answer = pad_sequences({{50, 51}, {52}}, kPad);
  b.samples = {{0, 0}, {0, 1}};
  return b;
}

std::vector<int32_t> row(const Tensor& t, int64_t r, int64_t length) {
  const int32_t* p = t.data<int32_t>() + r * t.dim(1);
  return std::vector<int32_t>(p, p + length);
}

constexpr int32_t kNone = -1;

TEST(Objective, QaBatchIsThePromptAndTheAnswerBesideTheText) {
  const CompressorBatch b = qa_batch(qa_micro_batch(), tokens());
  EXPECT_EQ(b.text_lengths, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(b.decoder_lengths, (std::vector<int64_t>{6, 6}));
  EXPECT_EQ(row(b.decoder_tokens, 0, 6), (std::vector<int32_t>{10, 11, 40, 12, 50, 51}));
  EXPECT_EQ(row(b.targets, 0, 6), (std::vector<int32_t>{kNone, kNone, kNone, 50, 51, kEos}));
  EXPECT_EQ(row(b.decoder_tokens, 1, 6), (std::vector<int32_t>{10, 11, 41, 42, 12, 52}));
  EXPECT_EQ(row(b.targets, 1, 6), (std::vector<int32_t>{kNone, kNone, kNone, kNone, 52, kEos}));
  EXPECT_EQ(count_targets(b), 5);
}

TEST(Objective, FullContextQaBatchPutsBosAndTheContextBeforeThePrompt) {
  const CompressorBatch b = full_context_qa_batch(qa_micro_batch(), tokens());
  EXPECT_FALSE(b.text.defined());
  EXPECT_TRUE(b.text_lengths.empty());
  EXPECT_EQ(b.decoder_lengths, (std::vector<int64_t>{10, 8}));
  ASSERT_EQ(b.decoder_tokens.shape(), (Shape{2, 10}));
  EXPECT_EQ(row(b.decoder_tokens, 0, 10), (std::vector<int32_t>{kBos, 30, 31, 32, 10, 11, 40, 12, 50, 51}));
  EXPECT_EQ(row(b.targets, 0, 10),
            (std::vector<int32_t>{kNone, kNone, kNone, kNone, kNone, kNone, kNone, 50, 51, kEos}));
  // The shorter row is right-padded, its padding without targets.
  EXPECT_EQ(row(b.decoder_tokens, 1, 10), (std::vector<int32_t>{kBos, 33, 10, 11, 41, 42, 12, 52, kPad, kPad}));
  EXPECT_EQ(row(b.targets, 1, 10),
            (std::vector<int32_t>{kNone, kNone, kNone, kNone, kNone, kNone, 52, kEos, kNone, kNone}));
  // The same prompt the evaluation gives the base model (and a mode-none checkpoint).
  EXPECT_EQ(full_context_qa_prompt(tokens(), {33}, {41, 42}), (std::vector<int32_t>{kBos, 33, 10, 11, 41, 42, 12}));
  EXPECT_EQ(count_targets(b), 5);
}

TEST(Objective, FullContextPromptWithoutBosStartsWithTheContext) {
  EXPECT_EQ(full_context_qa_prompt(tokens(/*bos=*/-1), {33}, {41}), (std::vector<int32_t>{33, 10, 11, 41, 12}));
  const CompressorBatch b = full_context_qa_batch(qa_micro_batch(), tokens(/*bos=*/-1));
  EXPECT_EQ(row(b.decoder_tokens, 0, 9), (std::vector<int32_t>{30, 31, 32, 10, 11, 40, 12, 50, 51}));
}

}  // namespace
}  // namespace xcomp
