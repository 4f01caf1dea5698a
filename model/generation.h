// Autoregressive decoding of one sequence with a KV cache.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/llama.h"
#include "model/sampling.h"

namespace xcomp {

struct GenerationOptions {
  int64_t max_new_tokens = 128;
  SamplingOptions sampling;
  std::vector<int32_t> stop_ids;  // generation ends after producing one of these
  int64_t first_position = 0;     // RoPE position of the first prompt token
  // LoRA applied in every layer (LlamaModel::forward's `adapters`), or null: the base model.
  LoraWeights* adapters = nullptr;
};

// Runs the prompt through `model` (after whatever `cache` already holds), then produces
// up to max_new_tokens tokens; `on_token` sees each as it is chosen and may return false
// to stop. Returns the new tokens (a stop id included when it ended the run).
std::vector<int32_t> generate(LlamaModel& model, KvCache& cache, const std::vector<int32_t>& prompt,
                              const GenerationOptions& options,
                              const std::function<bool(int32_t)>& on_token = nullptr);

// The same after the prompt has been fed by the caller: `logits` F32 [1, vocab] are those
// of the prompt's last position and the first new token goes to RoPE position
// `next_position` (options.first_position is not used).
std::vector<int32_t> continue_generation(const LlamaModel& model, KvCache& cache, Tensor logits, int64_t next_position,
                                         const GenerationOptions& options,
                                         const std::function<bool(int32_t)>& on_token = nullptr);

}  // namespace xcomp
