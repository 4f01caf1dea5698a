// Random inputs for the tests that run the compressor two ways and compare them (CUDA vs
// CPU, overlapped vs plain gradient sums): a padded batch of random texts in the
// regeneration layout (decoder [BOS] + text, targets text + [EOS]), and nonzero LoRA B
// matrices.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/compressor.h"
#include "model/llama.h"
#include "model/random.h"

namespace xcomp::test {

inline constexpr int32_t kBos = 1, kEos = 2;

// Texts of the given lengths (so the batch is padded to the longest), tokens in [3,
// vocab) drawn from `seed`.
inline CompressorBatch random_regeneration_batch(const std::vector<int64_t>& lengths, int64_t vocab, uint64_t seed) {
  const int64_t b = static_cast<int64_t>(lengths.size());
  int64_t l = 0;
  for (int64_t n : lengths) l = std::max(l, n);
  CompressorBatch batch;
  batch.text = Tensor::zeros({b, l}, DType::I32);
  batch.decoder_tokens = Tensor::zeros({b, l + 1}, DType::I32);
  batch.targets = Tensor::empty({b, l + 1}, DType::I32);
  std::fill(batch.targets.data<int32_t>(), batch.targets.data<int32_t>() + batch.targets.numel(), -1);
  for (int64_t r = 0; r < b; ++r) {
    batch.text_lengths.push_back(lengths[r]);
    batch.decoder_lengths.push_back(lengths[r] + 1);
    batch.decoder_tokens.data<int32_t>()[r * (l + 1)] = kBos;
    for (int64_t i = 0; i < lengths[r]; ++i) {
      const int32_t token = 3 + static_cast<int32_t>(counter_random_u64(seed, RandomPurpose::kInit, r, i) %
                                                     static_cast<uint64_t>(vocab - 3));
      batch.text.data<int32_t>()[r * l + i] = token;
      batch.decoder_tokens.data<int32_t>()[r * (l + 1) + i + 1] = token;
      batch.targets.data<int32_t>()[r * (l + 1) + i] = token;
    }
    batch.targets.data<int32_t>()[r * (l + 1) + lengths[r]] = kEos;
  }
  return batch;
}

// LoRA B starts at zero; give it values so that A's gradient and the adapted path are
// exercised too (the same numbers for every compressor of the same settings).
inline void perturb_lora_b(Compressor& c) {
  uint64_t stream = 0;
  for (auto& p : c.lora().parameters()) {
    if (p.name.find("lora_B") == std::string::npos) continue;
    float* v = p.value->data<float>();
    for (int64_t i = 0; i < p.value->numel(); ++i)
      v[i] = static_cast<float>(0.05 * (2 * counter_random_uniform(3, RandomPurpose::kInit, stream, i) - 1));
    ++stream;
  }
}

// The stories260K step that the two-backend checks run (tests/cuda/compressor_cuda_test.cc,
// and its CPU emulation in tests/unit/cuda_rounding_budget_test.cc): 3 padded texts of
// 23, 9 and 17 tokens, N = 4, LoRA r = 4 with dropout 0.1 (the same counter-based mask on
// every backend), token weight 1/52 (the batch's targets). The texts' tokens come from
// `batch_seed`; the GPU checks use the first, kGpuCheckBatch, and the CPU's precision
// measures average over it and the next ones.
inline constexpr uint64_t kGpuCheckBatch = 7;
struct TwoBackendStep {
  CompressorSettings settings;
  CompressorBatch batch;
  StepOptions options;
};
inline TwoBackendStep two_backend_step(CompressorMode mode, int64_t vocab, uint64_t batch_seed = kGpuCheckBatch) {
  TwoBackendStep s;
  s.settings.mode = mode;
  s.settings.num_tokens = 4;
  s.settings.lora.r = 4;
  s.settings.lora.dropout = 0.1;
  s.batch = random_regeneration_batch({23, 9, 17}, vocab, batch_seed);
  s.options.token_weight = 1.0f / 52;
  s.options.end_id = kEos;
  s.options.dropout_seed = 5;
  s.options.dropout_stream = 2;
  return s;
}

// two_backend_step's step on each of two models (which hold the same weights on two
// backends, or two ways of computing): each with its own compressor from the same seed
// (one for each batch), LoRA B perturbed alike; the second keeps or recomputes its
// activations as asked.
struct StepOnTwoModels {
  std::unique_ptr<Compressor> first, second;
  CompressorLoss first_loss, second_loss;
};

inline StepOnTwoModels step_on_two_models(const LlamaModel& first, const LlamaModel& second, CompressorMode mode,
                                          ActivationMemory second_activations = ActivationMemory::kKeep,
                                          float memory_scale = 1.0f, uint64_t batch_seed = kGpuCheckBatch) {
  TwoBackendStep step = two_backend_step(mode, first.config().vocab_size, batch_seed);
  step.settings.memory_scale = memory_scale;
  const uint64_t compressor_seed = batch_seed + 4;  // 11 for the GPU check's batch
  StepOnTwoModels r;
  r.first = std::make_unique<Compressor>(first.config(), step.settings, compressor_seed);
  r.second = std::make_unique<Compressor>(second.config(), step.settings, compressor_seed);
  perturb_lora_b(*r.first);
  perturb_lora_b(*r.second);
  r.first_loss = compressor_step(first, *r.first, step.batch, step.options);
  StepOptions options = step.options;
  options.activations = second_activations;
  r.second_loss = compressor_step(second, *r.second, step.batch, options);
  return r;
}

}  // namespace xcomp::test
