// Greedy decoding of evaluation items by each of the systems an evaluation compares:
//   compressed:   the trained compressor's prompt, decoded exactly as in training
//                 (model/compressed_decoding.h): regeneration from [BOS] (the AE token in
//                 embedding mode), QA from "Question: {q} Answer: " (the pieces of
//                 trainer/objective.h); for a mode-none checkpoint (QA only, nothing is
//                 compressed) the full_context prompt below, decoded with its LoRA;
//   full_context: the base model (no LoRA) with the text itself in its context:
//                 [BOS] + context + the QA prompt, or for regeneration [BOS] + text +
//                 [BOS] (the text once, then asked to start again);
//   no_context:   the base model alone: [BOS] + the QA prompt, or [BOS] for regeneration.
// With BaselinePrompt::kChat the two base-model systems are asked in the model's chat
// format instead (trainer/eval_chat_prompts.h: the QA question with or without the
// context, "repeat this text" for regeneration); regeneration's no_context stays [BOS].
// Each returns the generated ids without the stop token that ended them. Items are
// decoded together in one batch (model/batched_generation.h): a batch of one is the
// single-sequence decoding exactly; larger batches are faster and may differ from it in
// the last bits of float rounding.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/batched_generation.h"
#include "trainer/trained_compressor.h"

namespace xcomp {

enum class EvalSystem { kCompressed, kFullContext, kNoContext };
const char* eval_system_name(EvalSystem system);  // "compressed", "full_context", "no_context"
inline constexpr EvalSystem kEvalSystems[] = {EvalSystem::kCompressed, EvalSystem::kFullContext,
                                              EvalSystem::kNoContext};

using TokenIds = std::vector<int32_t>;

// How the base model's baselines are prompted: as plain text, the layout the compressor
// trains on (kPlain), or in the model's chat format (kChat, for instruct models).
enum class BaselinePrompt { kPlain, kChat };
const char* baseline_prompt_name(BaselinePrompt prompt);  // "plain", "chat"

struct QaQuestion {
  const TokenIds* context;
  const TokenIds* question;
};

class EvalDecoder {
 public:
  // kChat: InputError when the model's tokenizer has no chat format.
  EvalDecoder(TrainedCompressor& trained, int64_t max_new_tokens, BaselinePrompt baseline = BaselinePrompt::kPlain);

  // What `system` produces for each text / question, in order.
  std::vector<TokenIds> regenerate(const std::vector<const TokenIds*>& texts, EvalSystem system) const;
  std::vector<TokenIds> answer(const std::vector<QaQuestion>& questions, EvalSystem system) const;

 private:
  // The model on each row's tokens alone: the base model, or with `adapters`.
  std::vector<TokenIds> generate_plain(const std::vector<BatchedRow>& rows, LoraWeights* adapters = nullptr) const;
  // rows[r] decoded after the compressed texts[r].
  std::vector<TokenIds> generate_compressed(const std::vector<const TokenIds*>& texts,
                                            const std::vector<BatchedRow>& rows, bool ae_token) const;
  GenerationOptions options() const;
  std::vector<TokenIds> without_stops(std::vector<TokenIds> produced) const;

  TrainedCompressor& trained_;
  int64_t max_new_tokens_;
  BaselinePrompt baseline_;
  // Mode none: the checkpoint's LoRA where the model computes (null otherwise).
  std::unique_ptr<LoraWeights> decoder_adapters_;
};

}  // namespace xcomp
