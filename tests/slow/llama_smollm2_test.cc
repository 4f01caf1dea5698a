// SmolLM2-135M-Instruct, loaded straight from its Q4_1 GGUF, against PyTorch +
// transformers on the same dequantised weights
// (tests/reference/data/smollm2_135m_reference.safetensors).
#include <gtest/gtest.h>

#include <iostream>

#include <filesystem>

#include "io/model_loader.h"
#include "model/cpu/cpu_ops.h"
#include "tests/llama_reference.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

std::string smollm2_path() { return test::models_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf"; }

class SmolLM2 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(smollm2_path())) return;
    loaded_ = new LoadedModel(load_model(smollm2_path()));
    model_ = new LlamaModel(loaded_->config, load_weights(*loaded_), *ops_);
  }
  static void TearDownTestSuite() {
    delete model_;
    delete loaded_;
    model_ = nullptr;
    loaded_ = nullptr;
  }
  void SetUp() override {
    if (model_ == nullptr) GTEST_SKIP() << smollm2_path() << " is missing: run launch/setup.sh";
  }
  SafetensorsFile reference() const {
    return SafetensorsFile::open(test::source_dir() + "/tests/reference/data/smollm2_135m_reference.safetensors");
  }

  static inline CpuOps* ops_ = new CpuOps();
  static inline LoadedModel* loaded_ = nullptr;
  static inline LlamaModel* model_ = nullptr;
};

TEST_F(SmolLM2, ConfigComesFromGgufMetadata) {
  const LlamaConfig& c = loaded_->config;
  EXPECT_EQ(c.num_hidden_layers, 30);
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.num_attention_heads, 9);
  EXPECT_EQ(c.num_key_value_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(c.rope_theta, 100000.0);
}

TEST_F(SmolLM2, PaddedBatchLogitsMatchTransformers) {
  const test::LogitsError err = test::check_batch_case(*model_, reference());
  std::cerr << "batch case: max relative error " << err.all_positions << " (all positions), " << err.last_position << " (last position, full vocabulary)\n";
  EXPECT_LT(err.all_positions, 1e-4);
  EXPECT_LT(err.last_position, 1e-4);
}

TEST_F(SmolLM2, LogitsAfterAKvPrefixMatchTransformers) {
  const test::LogitsError err = test::check_prefix_case(*model_, reference());
  std::cerr << "prefix case: max relative error " << err.all_positions << " (all positions), " << err.last_position << " (last position, full vocabulary)\n";
  EXPECT_LT(err.all_positions, 1e-4);
  EXPECT_LT(err.last_position, 1e-4);
}

TEST_F(SmolLM2, ChatAnswerMatchesTransformersTokenForToken) {
  SafetensorsFile ref = reference();
  std::vector<int32_t> got = test::greedy_tokens(*model_, ref);
  Tensor want = ref.tensor("greedy.tokens");
  EXPECT_EQ(got, std::vector<int32_t>(want.data<int32_t>(), want.data<int32_t>() + want.numel()));
  EXPECT_EQ(loaded_->tokenizer->decode(got, /*skip_special=*/true), "The capital of France is Paris.");
}

TEST_F(SmolLM2, GenerateCommandAnswersAChatQuestion) {
  test::CommandResult r = test::run_xcomp("generate --model '" + smollm2_path() +
                                          "' --chat --system 'You are a helpful AI assistant named SmolLM, trained "
                                          "by Hugging Face' --prompt 'What is the capital of France?'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "The capital of France is Paris.\n");
}

}  // namespace
}  // namespace xcomp

namespace xcomp {
namespace {

TEST(SmolLM2Inspect, ListsStoredQuantisedTypesWithoutDequantising) {
  const std::string path = test::models_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is missing: run launch/setup.sh";
  test::CommandResult r = test::run_xcomp("inspect '" + path + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("format gguf"), std::string::npos);
  EXPECT_NE(r.out.find("num_hidden_layers 30"), std::string::npos);
  EXPECT_NE(r.out.find("token_embd.weight Q8_0 [49152, 576]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("blk.0.attn_q.weight Q4_1 [576, 576]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("parameters 134515008\n"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace xcomp
