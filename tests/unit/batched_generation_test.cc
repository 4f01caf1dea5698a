// Batched decoding (model/batched_generation.h) must decode every row as the
// single-sequence functions decode it alone: rows of different lengths (left padding,
// per-row positions), different token limits, a stop token ending one row while others
// go on, LoRA adapters, sampling, and compressed prompts in both modes and both decoder
// position conventions. On stories260K with randomised LoRA B, so the encoder and the
// adapted decoder really differ from the base model.
#include "model/batched_generation.h"

#include <gtest/gtest.h>

#include "io/model_loader.h"
#include "model/compressed_decoding.h"
#include "model/cpu/cpu_ops.h"
#include "model/random.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

using Rows = std::vector<BatchedRow>;

class BatchedGeneration : public ::testing::Test {
 protected:
  BatchedGeneration()
      : loaded_(load_model(test::fixture("stories260K/stories260K.bin"), test::fixture("stories260K/tok512.model"))),
        model_(loaded_.config, load_weights(loaded_), ops_) {}

  Compressor compressor(CompressorMode mode, DecoderPositions positions) const {
    CompressorSettings settings;
    settings.mode = mode;
    settings.num_tokens = 3;
    settings.decoder_positions = positions;
    settings.lora.r = 4;
    Compressor c(loaded_.config, settings, 11);
    uint64_t stream = 0;
    for (auto& p : c.lora().parameters()) {
      if (p.name.find("lora_B") == std::string::npos) continue;
      for (int64_t i = 0; i < p.value->numel(); ++i)
        p.value->data<float>()[i] =
            static_cast<float>(0.3 * (counter_random_uniform(5, RandomPurpose::kInit, stream, i) - 0.5));
      ++stream;
    }
    return c;
  }

  // generate() on one row alone.
  std::vector<int32_t> alone(const BatchedRow& row, GenerationOptions options) {
    options.max_new_tokens = row.max_new_tokens;
    KvCache cache(loaded_.config, 1, static_cast<int64_t>(row.tokens.size()) + row.max_new_tokens, ops_);
    return generate(model_, cache, row.tokens, options);
  }

  CpuOps ops_;
  LoadedModel loaded_;
  LlamaModel model_;
};

// Prompts of 1, 7 and 3 tokens with limits 9, 5 and 12: every row pads differently and
// stops at a different step.
Rows uneven_rows() {
  return {{{1}, 9}, {{1, 300, 41, 97, 120, 260, 33}, 5}, {{1, 88, 150}, 12}};
}

TEST_F(BatchedGeneration, PlainRowsDecodeAsTheyDoAlone) {
  const Rows rows = uneven_rows();
  GenerationOptions greedy;
  const auto batched = generate_batch(model_, rows, greedy);
  ASSERT_EQ(batched.size(), rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    EXPECT_EQ(batched[r], alone(rows[r], greedy)) << "row " << r;
    EXPECT_EQ(static_cast<int64_t>(batched[r].size()), rows[r].max_new_tokens) << "row " << r;
  }
}

TEST_F(BatchedGeneration, AStopTokenEndsItsRowAndTheOthersGoOn) {
  const Rows rows = uneven_rows();
  GenerationOptions greedy;
  const std::vector<int32_t> free_row = alone(rows[2], greedy);
  ASSERT_GE(free_row.size(), 4u);
  GenerationOptions stopping;
  stopping.stop_ids = {free_row[3]};  // row 2 stops on its fourth token (or earlier)
  const auto batched = generate_batch(model_, rows, stopping);
  for (size_t r = 0; r < rows.size(); ++r) EXPECT_EQ(batched[r], alone(rows[r], stopping)) << "row " << r;
  EXPECT_LE(batched[2].size(), 4u);
  EXPECT_EQ(batched[2].back(), free_row[3]);
}

TEST_F(BatchedGeneration, AdaptersAndSamplingDecodeAsAlone) {
  Compressor c = compressor(CompressorMode::kNone, DecoderPositions::kReference);
  LoraWeights adapters = lora_on_backend(c.lora(), ops_, /*with_gradients=*/false);
  const Rows rows = uneven_rows();
  GenerationOptions adapted;
  adapted.adapters = &adapters;
  const auto batched = generate_batch(model_, rows, adapted);
  GenerationOptions base;
  EXPECT_NE(batched, generate_batch(model_, rows, base)) << "the adapters must matter for this test to mean anything";
  for (size_t r = 0; r < rows.size(); ++r) EXPECT_EQ(batched[r], alone(rows[r], adapted)) << "row " << r;

  GenerationOptions sampled;
  sampled.sampling.temperature = 1.0f;
  sampled.sampling.top_p = 0.9f;
  sampled.sampling.seed = 4;
  sampled.first_position = 2;
  const auto drawn = generate_batch(model_, rows, sampled);
  for (size_t r = 0; r < rows.size(); ++r) EXPECT_EQ(drawn[r], alone(rows[r], sampled)) << "row " << r;
}

class BatchedCompressedGeneration
    : public BatchedGeneration,
      public ::testing::WithParamInterface<std::tuple<CompressorMode, DecoderPositions, bool /*ae token*/>> {};

TEST_P(BatchedCompressedGeneration, RowsDecodeAsTheyDoAlone) {
  const auto [mode, positions, ae] = GetParam();
  Compressor c = compressor(mode, positions);
  // Texts of 9, 4 and 6 tokens, right-padded to one batch as eval hands them to compress().
  const std::vector<std::vector<int32_t>> texts = {
      {300, 41, 97, 120, 260, 33, 77, 400, 12}, {88, 150, 250, 9}, {61, 62, 63, 64, 65, 66}};
  Tensor text = Tensor::zeros({3, 9}, DType::I32);
  std::vector<int64_t> lengths;
  for (size_t r = 0; r < texts.size(); ++r) {
    std::copy(texts[r].begin(), texts[r].end(), text.data<int32_t>() + r * 9);
    lengths.push_back(static_cast<int64_t>(texts[r].size()));
  }
  const Rows rows = {{{1}, 10}, {{1, 70, 71, 72}, 6}, {{1, 80}, 8}};
  const Tensor* ae_token = ae ? &c.ae_token() : nullptr;
  GenerationOptions greedy;
  const CompressedPrompt batch_prompt = compress(model_, c, text, lengths);
  const auto batched = generate_batch_from_compressed(model_, batch_prompt, positions, ae_token, rows, greedy);
  ASSERT_EQ(batched.size(), rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    Tensor one = Tensor::empty({1, lengths[r]}, DType::I32);
    std::copy(texts[r].begin(), texts[r].end(), one.data<int32_t>());
    const CompressedPrompt lone_prompt = compress(model_, c, one, {lengths[r]});
    GenerationOptions o = greedy;
    o.max_new_tokens = rows[r].max_new_tokens;
    const DecoderPrompt dp{&lone_prompt, 0, positions, ae_token};
    EXPECT_EQ(batched[r], generate_from_compressed(model_, dp, rows[r].tokens, o)) << "row " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, BatchedCompressedGeneration,
    ::testing::Values(std::make_tuple(CompressorMode::kKeyValue, DecoderPositions::kReference, false),
                      std::make_tuple(CompressorMode::kKeyValue, DecoderPositions::kAfterPrefix, false),
                      std::make_tuple(CompressorMode::kEmbedding, DecoderPositions::kReference, true),
                      std::make_tuple(CompressorMode::kEmbedding, DecoderPositions::kReference, false)),
    [](const auto& info) {
      return std::string(std::get<0>(info.param) == CompressorMode::kKeyValue ? "Kv" : "Embedding") +
             (std::get<1>(info.param) == DecoderPositions::kReference ? "Reference" : "AfterPrefix") +
             (std::get<2>(info.param) ? "AeToken" : "");
    });

}  // namespace
}  // namespace xcomp
