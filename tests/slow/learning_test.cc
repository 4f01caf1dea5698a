// Learning works: on stories260K, a K/V compressor trained on one fixed batch of four
// stories drives their regeneration loss far below what the decoder achieves with no
// prefix at all. (The validation-set comparison belongs to the quick start and the study.)
#include <gtest/gtest.h>

#include "io/llama2c.h"
#include "io/micro_batch.h"
#include "io/model_loader.h"
#include "model/compressor.h"
#include "model/cpu/cpu_ops.h"
#include "tests/test_support.h"
#include "trainer/adamw.h"
#include "trainer/objective.h"

namespace xcomp {
namespace {

std::vector<std::vector<int32_t>> first_stories(const Tokenizer& tokenizer, int count, int64_t max_len) {
  const std::string text = test::read_file(test::fixture("tinystories/tinystories_sample.txt"));
  std::vector<std::vector<int32_t>> out;
  size_t at = 0;
  while (static_cast<int>(out.size()) < count) {
    const size_t end = text.find("<|endoftext|>", at);
    std::string story = text.substr(at, end - at);
    story.erase(0, story.find_first_not_of(" \n"));
    std::vector<int32_t> ids = tokenizer.encode(story);
    if (static_cast<int64_t>(ids.size()) > max_len) ids.resize(max_len);
    out.push_back(ids);
    at = end + 13;
  }
  return out;
}

TEST(Learning, KvCompressorOverfitsAFixedBatchFarBelowTheNoPrefixLoss) {
  const std::string dir = test::temp_dir("learning") + "/model";
  convert_llama2c(test::fixture("stories260K/stories260K.bin"), dir, test::fixture("stories260K/tok512.model"));
  LoadedModel loaded = load_model(dir);
  CpuOps ops;
  LlamaModel model(loaded.config, load_weights(loaded), ops);

  MicroBatch micro;
  micro.text = pad_sequences(first_stories(*loaded.tokenizer, 4, 64), 0);
  micro.samples.resize(4);
  const ObjectiveTokens tokens = objective_tokens(*loaded.tokenizer, 1, 2, 0);
  const CompressorBatch batch = regeneration_batch(micro, tokens);
  const CompressorLoss no_prefix = decoder_only_loss(model, batch, tokens.eos);
  const double baseline = (no_prefix.sum - no_prefix.end_sum) / (no_prefix.targets - no_prefix.end_targets);

  CompressorSettings settings;
  settings.num_tokens = 16;
  Compressor compressor(loaded.config, settings, 0);
  AdamW optimizer(AdamWOptions{});
  std::vector<Tensor> grads;
  for (const auto& p : compressor.parameters()) {
    optimizer.add_parameter(p.name, *p.value);
    grads.push_back(*p.grad);
  }
  StepOptions options;
  options.token_weight = static_cast<float>(1.0 / count_targets(batch));
  options.end_id = tokens.eos;
  double text_loss = 0;
  for (int step = 0; step < 80; ++step) {
    compressor.zero_grad();
    const CompressorLoss loss = compressor_step(model, compressor, batch, options);
    text_loss = (loss.sum - loss.end_sum) / options.token_weight / (loss.targets - loss.end_targets);
    optimizer.step(grads, 3e-3);
  }
  RecordProperty("no_prefix_text_loss", std::to_string(baseline));
  RecordProperty("trained_text_loss", std::to_string(text_loss));
  std::cerr << "no-prefix text loss " << baseline << ", after 80 steps on the batch " << text_loss << "\n";
  EXPECT_LT(text_loss, 0.5 * baseline);
}

}  // namespace
}  // namespace xcomp
