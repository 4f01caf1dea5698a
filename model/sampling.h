// Choosing the next token from logits: greedy, or temperature + nucleus (top-p) sampling.
#pragma once

#include <cstdint>

namespace xcomp {

struct SamplingOptions {
  float temperature = 0.0f;  // 0 means greedy (argmax)
  float top_p = 1.0f;        // keep the smallest set of tokens whose probability reaches top_p
  uint64_t seed = 0;
};

// Picks a token from logits [vocab]; `step` keys the random draw, so the same seed and
// step give the same token.
int32_t sample_token(const float* logits, int64_t vocab, const SamplingOptions& options, uint64_t step);

}  // namespace xcomp
