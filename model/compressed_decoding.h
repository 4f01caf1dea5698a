// Decoding from a compressed prompt, laid out exactly as the training step's decoder
// sees it (model/compressor.cc, run_decoder), so that what was trained is what runs:
//   K/V mode: the prompt's N keys (after the encoder's RoPE) and values per layer are a
//     prefix of the KV cache; the decoder tokens sit at positions N.. (kReference) or
//     L+N.. (kAfterPrefix, L the compressed text's length);
//   embedding mode: the N memory embeddings are the first input rows at positions
//     0..N-1, the decoder tokens follow at N..; for regeneration the AE token's
//     embedding replaces the first decoder token (the [BOS] of [BOS] + text).
// The decoder is the frozen base model: no LoRA.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/compressor.h"
#include "model/generation.h"
#include "model/llama.h"

namespace xcomp {

// One sample of a compressed prompt and how the decoder must read it.
struct DecoderPrompt {
  const CompressedPrompt* prompt = nullptr;
  int64_t row = 0;                                            // the sample within prompt
  DecoderPositions positions = DecoderPositions::kReference;  // K/V mode only
  const Tensor* ae_token = nullptr;  // embedding mode: [1, hidden] replacing the first decoder token, or null
};

// Positions the decoder needs in a KvCache for the prompt and `decoder_tokens` more.
int64_t decoder_cache_size(const DecoderPrompt& prompt, int64_t decoder_tokens);

// Feeds the prompt and the decoder's input tokens (at least one) into an empty `cache`
// (batch 1). Returns the logits of the decoder tokens, F32 [1, T, vocab], or of the last
// one [1, vocab] with kLastPosition, and the RoPE position the next token goes to.
struct DecoderPrefill {
  Tensor logits;
  int64_t next_position = 0;
};
DecoderPrefill prefill_from_compressed(const LlamaModel& model, const DecoderPrompt& prompt,
                                       const std::vector<int32_t>& decoder_tokens, KvCache& cache, LogitsFor which);

// Greedy (or sampled, per options.sampling) continuation of decoder_tokens after the
// compressed prompt; returns the new tokens, a stop id included when it ended the run.
std::vector<int32_t> generate_from_compressed(const LlamaModel& model, const DecoderPrompt& prompt,
                                              const std::vector<int32_t>& decoder_tokens,
                                              const GenerationOptions& options);

}  // namespace xcomp
