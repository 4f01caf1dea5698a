// The two training objectives as decoder inputs and targets (DESIGN.md, "The method"):
//   regeneration: decoder input [BOS] + text, targets text + [EOS];
//   QA: decoder input "Question: {q} Answer: " + answer, loss only on answer + [EOS].
// QA with compressor.mode none (no compression, the upper bound) puts the context itself
// where the compressed prompt would be, as a base model is prompted with it:
//   decoder input [BOS] + context + "Question: {q} Answer: " + answer, at positions
//   0.. (no BOS when the model has none), loss only on answer + [EOS].
// This is exactly the prompt of the evaluation's full_context baseline (the base model:
// LoRA B starts at zero) followed by the answer, so an untrained mode-none run is that
// baseline and training measures what the same LoRA budget gains with the whole context.
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

// "Question: {q} Answer: " from its pieces.
std::vector<int32_t> qa_prompt(const ObjectiveTokens& tokens, const std::vector<int32_t>& question);
// [BOS] (when tokens.bos >= 0) + context + qa_prompt: the full-context prompt.
std::vector<int32_t> full_context_qa_prompt(const ObjectiveTokens& tokens, const std::vector<int32_t>& context,
                                            const std::vector<int32_t>& question);

CompressorBatch regeneration_batch(const MicroBatch& batch, const ObjectiveTokens& tokens);
CompressorBatch qa_batch(const MicroBatch& batch, const ObjectiveTokens& tokens);
// Mode none's QA batch: the decoder tokens hold full_context_qa_prompt + answer; the
// batch has no separate text (text undefined, text_lengths empty).
CompressorBatch full_context_qa_batch(const MicroBatch& batch, const ObjectiveTokens& tokens);

// Targets (not -1) in a batch: the denominator of the mean loss.
int64_t count_targets(const CompressorBatch& batch);

}  // namespace xcomp
