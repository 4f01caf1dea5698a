// Decoding from a compressed prompt (model/compressed_decoding.h) must lay the decoder
// out exactly as the training step does: the loss computed from its logits over a
// sample's decoder tokens equals compressor_step's loss for that sample, in both modes,
// both decoder position conventions, and both objectives' layouts. Run on stories260K
// with trained-looking (non-zero) LoRA B, so that the encoder really differs from the
// decoder.
#include "model/compressed_decoding.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "io/model_loader.h"
#include "model/cpu/cpu_ops.h"
#include "model/random.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

constexpr int32_t kBos = 1, kEos = 2;

struct Sample {
  std::vector<int32_t> text, decoder, targets;
};

// Regeneration: [BOS] + text -> text + [EOS]. QA: prompt + answer, targets on answer + EOS.
std::vector<Sample> samples(bool regeneration) {
  const std::vector<std::vector<int32_t>> texts = {{300, 41, 97, 120, 260, 33, 77, 400, 12}, {88, 150, 250, 9}};
  std::vector<Sample> out;
  for (const auto& text : texts) {
    Sample s;
    s.text = text;
    if (regeneration) {
      s.decoder = {kBos};
      s.decoder.insert(s.decoder.end(), text.begin(), text.end());
      s.targets = text;
      s.targets.push_back(kEos);
    } else {
      const std::vector<int32_t> prompt = {60, 61, 62, text[1]}, answer = {text[0], text[2]};
      s.decoder = prompt;
      s.decoder.insert(s.decoder.end(), answer.begin(), answer.end());
      s.targets.assign(s.decoder.size(), -1);
      for (size_t i = prompt.size() - 1; i + 1 < s.decoder.size(); ++i) s.targets[i] = s.decoder[i + 1];
      s.targets.back() = kEos;
    }
    out.push_back(s);
  }
  return out;
}

Tensor row(const std::vector<int32_t>& v) {
  Tensor t = Tensor::empty({1, static_cast<int64_t>(v.size())}, DType::I32);
  std::copy(v.begin(), v.end(), t.data<int32_t>());
  return t;
}

CompressorBatch one_sample_batch(const Sample& s) {
  CompressorBatch b;
  b.text = row(s.text);
  b.text_lengths = {static_cast<int64_t>(s.text.size())};
  b.decoder_tokens = row(s.decoder);
  b.decoder_lengths = {static_cast<int64_t>(s.decoder.size())};
  b.targets = row(s.targets);
  return b;
}

// Sum over targets of -log softmax(logits)[target], in double.
double cross_entropy_sum(const Tensor& logits, const std::vector<int32_t>& targets) {
  const int64_t vocab = logits.dim(2);
  double sum = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    if (targets[i] < 0) continue;
    const float* l = logits.data<float>() + i * vocab;
    double max = l[0];
    for (int64_t v = 1; v < vocab; ++v) max = std::max<double>(max, l[v]);
    double z = 0;
    for (int64_t v = 0; v < vocab; ++v) z += std::exp(l[v] - max);
    sum += max + std::log(z) - l[targets[i]];
  }
  return sum;
}

class CompressedDecoding
    : public ::testing::TestWithParam<std::tuple<CompressorMode, DecoderPositions, bool /*regeneration*/>> {
 protected:
  CompressedDecoding()
      : loaded_(load_model(test::fixture("stories260K/stories260K.bin"), test::fixture("stories260K/tok512.model"))),
        model_(loaded_.config, load_weights(loaded_), ops_) {}
  CpuOps ops_;
  LoadedModel loaded_;
  LlamaModel model_;
};

TEST_P(CompressedDecoding, LossFromDecodedLogitsEqualsTheTrainingStep) {
  const auto [mode, positions, regeneration] = GetParam();
  CompressorSettings settings;
  settings.mode = mode;
  settings.num_tokens = 4;
  settings.decoder_positions = positions;
  settings.lora.r = 4;
  Compressor compressor(loaded_.config, settings, 7);
  uint64_t stream = 0;
  for (auto& p : compressor.lora().parameters()) {  // B = 0 would make the encoder the base model
    if (p.name.find("lora_B") == std::string::npos) continue;
    for (int64_t i = 0; i < p.value->numel(); ++i)
      p.value->data<float>()[i] =
          static_cast<float>(0.2 * (counter_random_uniform(3, RandomPurpose::kInit, stream, i) - 0.5));
    ++stream;
  }
  const bool ae = mode == CompressorMode::kEmbedding && regeneration;

  for (const Sample& s : samples(regeneration)) {
    StepOptions options;
    options.backward = false;
    options.ae_token = regeneration;
    const CompressorBatch batch = one_sample_batch(s);
    const double trained = compressor_step(model_, compressor, batch, options).sum;

    const CompressedPrompt prompt = compress(model_, compressor, batch.text, batch.text_lengths);
    DecoderPrompt dp{&prompt, 0, positions, ae ? &compressor.ae_token() : nullptr};
    KvCache cache(loaded_.config, 1, decoder_cache_size(dp, static_cast<int64_t>(s.decoder.size())), model_.ops());
    const DecoderPrefill prefill = prefill_from_compressed(model_, dp, s.decoder, cache, LogitsFor::kAllPositions);
    const double decoded = cross_entropy_sum(prefill.logits, s.targets);
    EXPECT_NEAR(decoded, trained, 1e-4 * std::abs(trained)) << "text of " << s.text.size() << " tokens";

    // The first generated token is the argmax of the first target position's logits.
    GenerationOptions greedy;
    greedy.max_new_tokens = 1;
    const size_t first_target = regeneration ? 0 : s.decoder.size() - 3;
    const std::vector<int32_t> prefix(s.decoder.begin(), s.decoder.begin() + first_target + 1);
    const std::vector<int32_t> produced = generate_from_compressed(model_, dp, prefix, greedy);
    ASSERT_EQ(produced.size(), 1u);
    const float* l = prefill.logits.data<float>() + first_target * loaded_.config.vocab_size;
    EXPECT_EQ(produced[0], std::max_element(l, l + loaded_.config.vocab_size) - l);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, CompressedDecoding,
    ::testing::Values(std::make_tuple(CompressorMode::kKeyValue, DecoderPositions::kReference, true),
                      std::make_tuple(CompressorMode::kKeyValue, DecoderPositions::kAfterPrefix, true),
                      std::make_tuple(CompressorMode::kKeyValue, DecoderPositions::kReference, false),
                      std::make_tuple(CompressorMode::kEmbedding, DecoderPositions::kReference, true),
                      std::make_tuple(CompressorMode::kEmbedding, DecoderPositions::kReference, false)),
    [](const auto& info) {
      return std::string(std::get<0>(info.param) == CompressorMode::kKeyValue ? "Kv" : "Embedding") +
             (std::get<1>(info.param) == DecoderPositions::kReference ? "Reference" : "AfterPrefix") +
             (std::get<2>(info.param) ? "Regeneration" : "Qa");
    });

}  // namespace
}  // namespace xcomp
