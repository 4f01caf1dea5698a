// The two training objectives as decoder inputs and targets (DESIGN.md, "The method"):
//   regeneration: decoder input [BOS] + text, targets text + [EOS];
//   QA: decoder input "Question: {q} Answer: " + answer, loss only on answer + [EOS].
// The QA prompt is assembled from separately tokenised pieces (the template's two
// halves around the question's tokens as stored in the shard), so it can differ from
// tokenising the whole string at piece boundaries; the same pieces are used in training
// and evaluation.
#pragma once

#include <cstdint>
#include <vector>

#include "io/micro_batch.h"
#include "io/tokenizer.h"
#include "model/compressor.h"

namespace xcomp {

struct ObjectiveTokens {
  int32_t bos = -1, eos = -1, pad = 0;
  std::vector<int32_t> question_prefix;  // "Question: "
  std::vector<int32_t> answer_prefix;    // " Answer: "
};

ObjectiveTokens objective_tokens(const Tokenizer& tokenizer, int32_t bos, int32_t eos, int32_t pad);

CompressorBatch regeneration_batch(const MicroBatch& batch, const ObjectiveTokens& tokens);
CompressorBatch qa_batch(const MicroBatch& batch, const ObjectiveTokens& tokens);

// Targets (not -1) in a batch: the denominator of the mean loss.
int64_t count_targets(const CompressorBatch& batch);

}  // namespace xcomp
