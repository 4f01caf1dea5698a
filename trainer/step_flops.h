// Model FLOPs of one compressor training step, counted honestly (DESIGN.md, Numbers):
// the frozen base costs 2 FLOPs per weight per token forward and 2 backward (activation
// gradients only, no weight gradients), LoRA adds its own forward, activation and weight
// gradients, attention is counted over the keys each query actually sees (causal), and
// work the step skips by design (the encoder's last layers on rows whose outputs nothing
// reads, the LM head on positions without a target) is not counted. Used for MFU in
// `xcomp bench train`.
#pragma once

#include <cstdint>

#include "model/compressor.h"
#include "model/llama_config.h"

namespace xcomp {

// One micro-batch of full-length samples: B texts of L tokens, N compression tokens, a
// decoder input of T tokens (regeneration: T = L + 1) with a target at every position.
// Mode none has no encoder: T counts everything the decoder reads (L and N unused).
struct StepShape {
  int64_t batch = 0, text_len = 0, num_tokens = 0, decoder_len = 0;
};

struct StepFlops {
  double encoder_matmul = 0;  // frozen projections and MLPs of the encoder, forward + backward
  double decoder_matmul = 0;  // the same for the decoder, LM head included
  double lora = 0;            // adapters: forward, input gradient, weight gradient
  double attention = 0;       // scores and weighted sums, forward + backward
  double total() const { return encoder_matmul + decoder_matmul + lora + attention; }
};

StepFlops compressor_step_flops(const LlamaConfig& config, const CompressorSettings& settings, const StepShape& shape);

// Forward FLOPs of causal attention over `batch` rows of `queries` queries, each seeing
// the `prefix` entries before them and the queries up to itself (backward counts twice
// this): the attention term of compressor_step_flops, for one call.
double attention_forward_flops(const LlamaConfig& config, int64_t batch, int64_t queries, int64_t prefix);

}  // namespace xcomp
