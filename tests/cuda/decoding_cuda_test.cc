// Decoding on the CUDA backend against the CPU backend, on stories260K with fp32 weights:
// what `xcomp eval --device cuda` runs. The compressed prompt (per-layer keys and values,
// or the memory embeddings) within fp32 rounding, then greedy decoding from it -- batched
// with left padding, and a row alone -- and plain decoding with and without LoRA (the
// mode-none system and the baselines): the same tokens. Different summation orders move
// logits by ~1e-6 relative; a greedy step would flip only on a near-tie that close, which
// these ~100 decisions over a 512-token vocabulary do not meet.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <utility>
#include <string>
#include <tuple>
#include <vector>

#include "io/model_loader.h"
#include "model/batched_generation.h"
#include "model/compressed_decoding.h"
#include "model/compressor.h"
#include "model/cpu/cpu_ops.h"
#include "model/cuda/cuda_ops.h"
#include "model/generation.h"
#include "model/llama.h"
#include "model/lora.h"
#include "tests/cuda/tensor_compare.h"
#include "tests/random_batch.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

constexpr double kPromptTolerance = 1e-5;  // relative, fp32 in another order

// Each row continues [BOS] + the first three tokens of its text.
std::vector<BatchedRow> decoder_rows(const CompressorBatch& batch, int64_t max_new_tokens) {
  std::vector<BatchedRow> rows;
  const int64_t l = batch.text.dim(1);
  for (size_t r = 0; r < batch.text_lengths.size(); ++r) {
    BatchedRow row;
    row.tokens = {test::kBos};
    for (int64_t i = 0; i < 3; ++i) row.tokens.push_back(batch.text.data<int32_t>()[static_cast<int64_t>(r) * l + i]);
    row.max_new_tokens = max_new_tokens;
    rows.push_back(row);
  }
  return rows;
}

class DecodingOnCuda : public ::testing::TestWithParam<std::tuple<CompressorMode, DecoderPositions>> {};

TEST_P(DecodingOnCuda, GreedyTokensMatchTheCpuBackend) {
  const auto [mode, positions] = GetParam();
  const LoadedModel loaded = load_model(test::fixture("stories260K/stories260K.bin"),
                                        test::fixture("stories260K/tok512.model"));
  const LlamaWeights weights = load_weights(loaded);
  CpuOps cpu;
  std::unique_ptr<Ops> cuda = make_cuda_ops(0, CudaWeightStorage::kF32);
  const LlamaModel cpu_model(loaded.config, weights, cpu);
  const LlamaModel cuda_model(loaded.config, weights, *cuda);

  CompressorSettings settings;
  settings.mode = mode;
  settings.num_tokens = 4;
  settings.decoder_positions = positions;
  settings.lora.r = 4;
  Compressor compressor(loaded.config, settings, 11);  // host tensors: both backends read them
  test::perturb_lora_b(compressor);
  const CompressorBatch batch = test::random_regeneration_batch({23, 9, 17}, loaded.config.vocab_size, 7);

  const CompressedPrompt want = compress(cpu_model, compressor, batch.text, batch.text_lengths);
  const CompressedPrompt got = compress(cuda_model, compressor, batch.text, batch.text_lengths);
  double worst = 0;
  ASSERT_EQ(got.keys.size(), want.keys.size());
  for (size_t layer = 0; layer < want.keys.size(); ++layer) {
    for (const auto& [g, w] : {std::pair{&got.keys[layer], &want.keys[layer]},
                               std::pair{&got.values[layer], &want.values[layer]}}) {
      const double err = test::relative_max_error(*g, *w);
      worst = std::max(worst, err);
      EXPECT_LT(err, kPromptTolerance) << "layer " << layer;
    }
  }
  if (mode == CompressorMode::kEmbedding) {
    worst = std::max(worst, test::relative_max_error(got.embeddings, want.embeddings));
    EXPECT_LT(test::relative_max_error(got.embeddings, want.embeddings), kPromptTolerance);
  }
  RecordProperty("worst_prompt_error", std::to_string(worst));

  GenerationOptions options;  // greedy
  options.stop_ids = {test::kEos};
  const std::vector<BatchedRow> rows = decoder_rows(batch, 12);
  const Tensor* ae = mode == CompressorMode::kEmbedding ? &compressor.ae_token() : nullptr;
  const auto cpu_tokens = generate_batch_from_compressed(cpu_model, want, positions, ae, rows, options);
  const auto cuda_tokens = generate_batch_from_compressed(cuda_model, got, positions, ae, rows, options);
  EXPECT_EQ(cuda_tokens, cpu_tokens);
  // One row alone: the single-sequence path.
  DecoderPrompt alone{&got, 1, positions, ae};
  DecoderPrompt alone_cpu{&want, 1, positions, ae};
  options.max_new_tokens = 12;
  EXPECT_EQ(generate_from_compressed(cuda_model, alone, rows[1].tokens, options),
            generate_from_compressed(cpu_model, alone_cpu, rows[1].tokens, options));
}

INSTANTIATE_TEST_SUITE_P(Modes, DecodingOnCuda,
                         ::testing::Values(std::tuple{CompressorMode::kKeyValue, DecoderPositions::kReference},
                                           std::tuple{CompressorMode::kKeyValue, DecoderPositions::kAfterPrefix},
                                           std::tuple{CompressorMode::kEmbedding, DecoderPositions::kReference}),
                         [](const auto& info) {
                           if (std::get<0>(info.param) == CompressorMode::kEmbedding) return std::string("embedding");
                           return std::string(std::get<1>(info.param) == DecoderPositions::kReference
                                                  ? "kv_reference"
                                                  : "kv_after_prefix");
                         });

// The baselines' and mode none's path: the model alone on plain tokens, with and without
// LoRA (mode none's decoder carries it), batched and alone.
TEST(PlainDecodingOnCuda, GreedyTokensMatchTheCpuBackend) {
  const LoadedModel loaded = load_model(test::fixture("stories260K/stories260K.bin"),
                                        test::fixture("stories260K/tok512.model"));
  const LlamaWeights weights = load_weights(loaded);
  CpuOps cpu;
  std::unique_ptr<Ops> cuda = make_cuda_ops(0, CudaWeightStorage::kF32);
  LlamaModel cpu_model(loaded.config, weights, cpu);
  LlamaModel cuda_model(loaded.config, weights, *cuda);
  CompressorSettings settings;
  settings.mode = CompressorMode::kNone;
  settings.lora.r = 4;
  Compressor compressor(loaded.config, settings, 11);
  test::perturb_lora_b(compressor);
  const CompressorBatch batch = test::random_regeneration_batch({23, 9, 17}, loaded.config.vocab_size, 9);
  const std::vector<BatchedRow> rows = decoder_rows(batch, 12);
  // Each model reads adapters on its own backend, as evaluation hands them over
  // (lora_on_backend): the CUDA ops refuse host tensors.
  LoraWeights cuda_lora = lora_on_backend(compressor.lora(), *cuda, /*with_gradients=*/false);
  for (const bool with_lora : {false, true}) {
    SCOPED_TRACE(with_lora ? "with LoRA" : "base model");
    GenerationOptions cpu_options, cuda_options;
    cpu_options.stop_ids = cuda_options.stop_ids = {test::kEos};
    cpu_options.adapters = with_lora ? &compressor.lora() : nullptr;
    cuda_options.adapters = with_lora ? &cuda_lora : nullptr;
    EXPECT_EQ(generate_batch(cuda_model, rows, cuda_options), generate_batch(cpu_model, rows, cpu_options));
    cpu_options.max_new_tokens = cuda_options.max_new_tokens = 12;
    KvCache cpu_cache(loaded.config, 1, 16, cpu), cuda_cache(loaded.config, 1, 16, *cuda);
    EXPECT_EQ(generate(cuda_model, cuda_cache, rows[2].tokens, cuda_options),
              generate(cpu_model, cpu_cache, rows[2].tokens, cpu_options));
  }
}

}  // namespace
}  // namespace xcomp
