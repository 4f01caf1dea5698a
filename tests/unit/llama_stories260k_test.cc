// stories260K, converted from llama2.c by xcomp, against PyTorch + transformers
// (tests/reference/data/stories260K_reference.safetensors) and the published sample.
#include <gtest/gtest.h>

#include <iostream>

#include "io/llama2c.h"
#include "io/model_loader.h"
#include "model/cpu/cpu_ops.h"
#include "model/input_error.h"
#include "tests/llama_reference.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

class Stories260K : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_dir("stories260k") + "/model");
    convert_llama2c(test::fixture("stories260K/stories260K.bin"), *dir_, test::fixture("stories260K/tok512.model"));
  }
  static void TearDownTestSuite() { delete dir_; }

  Stories260K()
      : loaded_(load_model(*dir_)),
        model_(loaded_.config, load_weights(loaded_), ops_),
        reference_(SafetensorsFile::open(test::source_dir() + "/tests/reference/data/stories260K_reference.safetensors")) {}

  static std::string* dir_;
  CpuOps ops_;
  LoadedModel loaded_;
  LlamaModel model_;
  SafetensorsFile reference_;
};
std::string* Stories260K::dir_ = nullptr;

TEST_F(Stories260K, PaddedBatchLogitsMatchTransformers) {
  const test::LogitsError err = test::check_batch_case(model_, reference_);
  std::cerr << "batch case: max relative error " << err.all_positions << " (all positions), " << err.last_position << " (last position, full vocabulary)\n";
  EXPECT_LT(err.all_positions, 1e-5);
  EXPECT_LT(err.last_position, 1e-5);
}

TEST_F(Stories260K, LogitsAfterAKvPrefixMatchTransformers) {
  const test::LogitsError err = test::check_prefix_case(model_, reference_);
  std::cerr << "prefix case: max relative error " << err.all_positions << " (all positions), " << err.last_position << " (last position, full vocabulary)\n";
  EXPECT_LT(err.all_positions, 1e-5);
  EXPECT_LT(err.last_position, 1e-5);
}

TEST_F(Stories260K, GreedyTokensMatchTransformers) {
  std::vector<int32_t> got = test::greedy_tokens(model_, reference_);
  Tensor want = reference_.tensor("greedy.tokens");
  EXPECT_EQ(got, std::vector<int32_t>(want.data<int32_t>(), want.data<int32_t>() + want.numel()));
}

TEST_F(Stories260K, GreedyFromBosTellsThePublishedStory) {
  test::CommandResult r = test::run_xcomp("generate --model '" + *dir_ + "' --max-new-tokens 80");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string published =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she "
      "saw a big, red ball. She wanted to play with it, but it was too high.";
  EXPECT_EQ(r.out.substr(0, published.size()), published) << r.out;
}

TEST_F(Stories260K, TokenIdOutsideVocabularyIsAnInputError) {
  Tensor tokens = Tensor::empty({1, 2}, DType::I32);
  tokens.data<int32_t>()[0] = 1;
  tokens.data<int32_t>()[1] = 512;
  Tensor positions = Tensor::zeros({1, 2}, DType::I32), mask = Tensor::zeros({1, 2}, DType::I32);
  KvCache cache(loaded_.config, 1, 2, model_.ops());
  EXPECT_THROW(model_.forward(tokens, positions, mask, cache), InputError);
}

}  // namespace
}  // namespace xcomp
