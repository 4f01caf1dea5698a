// Decoding several sequences at once: each row decodes what generate (model/generation.h)
// or generate_from_compressed (model/compressed_decoding.h) would decode for it alone,
// but one forward pass per step serves every row. Decoding one sequence is bound by
// reading the weights (SmolLM2: ~0.5 GB of them per token on the CPU backend); a batch of
// B rows reads them once for B tokens.
//
// Layout: rows are left-padded, so every row's newest position is the batch's newest and
// a step appends one entry to all rows. Padding entries are masked (never attended) and
// each row keeps its own RoPE positions, so a row sees what it would see alone. The
// arithmetic is not bit for bit that of a lone row (matrix products over B rows may sum
// in another order, masked padding adds exact zeros), so a near-tie between two tokens
// can break the other way; one row alone (B = 1) is the single-sequence path exactly.
// A row that has finished keeps riding along masked until the longest one ends.
#pragma once

#include <cstdint>
#include <vector>

#include "model/compressor.h"
#include "model/generation.h"
#include "model/llama.h"

namespace xcomp {

// One row: its input tokens (at least one) and how many new tokens it may produce.
struct BatchedRow {
  std::vector<int32_t> tokens;
  int64_t max_new_tokens = 128;
};

// generate() for every row: the rows' tokens at positions options.first_position..,
// options.adapters applied (mode none's decoder) or the base model. options.max_new_tokens
// is not used (each row has its own). Returns per row the new tokens, a stop id included
// when it ended the row.
std::vector<std::vector<int32_t>> generate_batch(const LlamaModel& model, const std::vector<BatchedRow>& rows,
                                                 const GenerationOptions& options);

// generate_from_compressed() for every row: row r decodes after row r of `prompt` (one
// row of `prompt` per row), laid out as training's decoder: K/V mode, the N keys and
// values as a cache prefix and the tokens at N.. (kReference) or text_length + N..
// (kAfterPrefix); embedding mode, the N memory embeddings then the tokens at 0.., with
// `ae_token` (or null) replacing the first token's embedding.
std::vector<std::vector<int32_t>> generate_batch_from_compressed(const LlamaModel& model,
                                                                 const CompressedPrompt& prompt,
                                                                 DecoderPositions positions, const Tensor* ae_token,
                                                                 const std::vector<BatchedRow>& rows,
                                                                 const GenerationOptions& options);

}  // namespace xcomp
