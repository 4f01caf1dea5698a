// Greedy decoding of one evaluation item by each of the systems an evaluation compares:
//   compressed:   the trained compressor's prompt, decoded exactly as in training
//                 (model/compressed_decoding.h): regeneration from [BOS] (the AE token in
//                 embedding mode), QA from "Question: {q} Answer: " (the pieces of
//                 trainer/objective.h); for a mode-none checkpoint (QA only, nothing is
//                 compressed) the full_context prompt below, decoded with its LoRA;
//   full_context: the base model (no LoRA) with the text itself in its context:
//                 [BOS] + context + the QA prompt, or for regeneration [BOS] + text +
//                 [BOS] (the text once, then asked to start again);
//   no_context:   the base model alone: [BOS] + the QA prompt, or [BOS] for regeneration.
// Each returns the generated ids without the stop token that ended them.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/generation.h"
#include "trainer/trained_compressor.h"

namespace xcomp {

enum class EvalSystem { kCompressed, kFullContext, kNoContext };
const char* eval_system_name(EvalSystem system);  // "compressed", "full_context", "no_context"
inline constexpr EvalSystem kEvalSystems[] = {EvalSystem::kCompressed, EvalSystem::kFullContext,
                                              EvalSystem::kNoContext};

class EvalDecoder {
 public:
  EvalDecoder(TrainedCompressor& trained, int64_t max_new_tokens);

  std::vector<int32_t> regenerate(const std::vector<int32_t>& text, EvalSystem system) const;
  std::vector<int32_t> answer(const std::vector<int32_t>& context, const std::vector<int32_t>& question,
                              EvalSystem system) const;

 private:
  // The model on `prompt` alone: the base model, or with `adapters`.
  std::vector<int32_t> generate_plain(const std::vector<int32_t>& prompt, int64_t max_new_tokens,
                                      LoraWeights* adapters = nullptr) const;
  std::vector<int32_t> generate_compressed(const std::vector<int32_t>& text, const std::vector<int32_t>& decoder,
                                           bool ae_token, int64_t max_new_tokens) const;
  GenerationOptions options(int64_t max_new_tokens) const;

  TrainedCompressor& trained_;
  int64_t max_new_tokens_;
  // Mode none: the checkpoint's LoRA where the model computes (null otherwise).
  std::unique_ptr<LoraWeights> decoder_adapters_;
};

}  // namespace xcomp
