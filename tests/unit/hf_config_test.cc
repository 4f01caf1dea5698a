// config.json for LlamaForCausalLM: reading, defaults, every error naming file and key,
// and a write/read round trip.
#include "io/hf_config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/input_error.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {
using json = nlohmann::json;

json llama3_like() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
    "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2,
    "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 300,
    "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "max_position_embeddings": 1024,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                     "high_freq_factor": 4.0, "original_max_position_embeddings": 512},
    "tie_word_embeddings": true, "bos_token_id": 256, "eos_token_id": [257, 259],
    "torch_dtype": "bfloat16"})");
}

std::string write_config(const json& j) {
  std::string path = test::temp_dir("hf_config") + "/config.json";
  test::write_file(path, j.dump());
  return path;
}

void expect_config_error(const std::string& path, const std::string& key) {
  try {
    read_hf_config(path);
    FAIL() << "expected InputError about " << key;
  } catch (const InputError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find(key), std::string::npos) << m;
  }
}

TEST(HfConfig, ReadsALlama3Config) {
  std::string path = write_config(llama3_like());
  LlamaConfig c = read_hf_config(path);
  EXPECT_EQ(c.source, path);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 160);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 8);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 300);
  EXPECT_EQ(c.max_position_embeddings, 1024);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 512);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 256);
  EXPECT_EQ(c.eos_token_id, 257);
  EXPECT_EQ(c.extra_eos_token_ids, std::vector<int32_t>{259});
}

TEST(HfConfig, AppliesDefaults) {
  json j = llama3_like();
  for (const char* key : {"num_key_value_heads", "rope_theta", "rope_scaling", "tie_word_embeddings", "hidden_act"}) {
    j.erase(key);
  }
  j["eos_token_id"] = 258;
  j["rope_scaling"] = nullptr;
  LlamaConfig c = read_hf_config(write_config(j));
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_TRUE(c.rope_scaling.type.empty());
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.eos_token_id, 258);
  EXPECT_TRUE(c.extra_eos_token_ids.empty());
}

TEST(HfConfig, MissingKey) {
  json j = llama3_like();
  j.erase("vocab_size");
  expect_config_error(write_config(j), "vocab_size");
}

TEST(HfConfig, WrongType) {
  json j = llama3_like();
  j["hidden_size"] = "64";
  expect_config_error(write_config(j), "hidden_size");
  j = llama3_like();
  j["tie_word_embeddings"] = 1;
  expect_config_error(write_config(j), "tie_word_embeddings");
  j = llama3_like();
  j["eos_token_id"] = {257, "x"};
  expect_config_error(write_config(j), "eos_token_id");
}

TEST(HfConfig, OutOfRange) {
  json j = llama3_like();
  j["num_hidden_layers"] = 0;
  expect_config_error(write_config(j), "num_hidden_layers");
  j = llama3_like();
  j["bos_token_id"] = 300;
  expect_config_error(write_config(j), "bos_token_id");
}

TEST(HfConfig, UnsupportedRopeScaling) {
  json j = llama3_like();
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  expect_config_error(write_config(j), "rope_scaling.type");
  j = llama3_like();
  j["rope_scaling"].erase("low_freq_factor");
  expect_config_error(write_config(j), "rope_scaling.low_freq_factor");
}

TEST(HfConfig, HeadsNotDividing) {
  json j = llama3_like();
  j["num_key_value_heads"] = 3;
  expect_config_error(write_config(j), "num_key_value_heads");
  j = llama3_like();
  j["num_attention_heads"] = 7;  // 64 is not a multiple of 7 and no head_dim is given
  expect_config_error(write_config(j), "num_attention_heads");
}

TEST(HfConfig, UnsupportedActivationOrArchitecture) {
  json j = llama3_like();
  j["hidden_act"] = "gelu";
  expect_config_error(write_config(j), "hidden_act");
  j = llama3_like();
  j["architectures"] = {"MistralForCausalLM"};
  j["model_type"] = "mistral";
  expect_config_error(write_config(j), "model_type");
  j = llama3_like();
  j["attention_bias"] = true;
  expect_config_error(write_config(j), "attention_bias");
}

TEST(HfConfig, MalformedOrMissingFile) {
  std::string dir = test::temp_dir("hf_config");
  test::write_file(dir + "/config.json", "{\"hidden_size\": 64,");
  expect_config_error(dir + "/config.json", "JSON");
  expect_config_error(dir + "/absent.json", "");
}

TEST(HfConfig, WriteThenReadRoundTrips) {
  LlamaConfig c = read_hf_config(write_config(llama3_like()));
  std::string path = test::temp_dir("hf_config") + "/written.json";
  write_hf_config(c, path);
  json written = json::parse(test::read_file(path));
  EXPECT_EQ(written["architectures"], json({"LlamaForCausalLM"}));
  EXPECT_EQ(written["model_type"], "llama");
  EXPECT_EQ(written["torch_dtype"], "float32");
  EXPECT_EQ(written["eos_token_id"], json({257, 259}));
  LlamaConfig back = read_hf_config(path);
  EXPECT_EQ(back.source, path);
  EXPECT_EQ(back.hidden_size, c.hidden_size);
  EXPECT_EQ(back.num_key_value_heads, c.num_key_value_heads);
  EXPECT_EQ(back.head_dim, c.head_dim);
  EXPECT_EQ(back.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(back.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(back.tie_word_embeddings, c.tie_word_embeddings);
  EXPECT_EQ(back.extra_eos_token_ids, c.extra_eos_token_ids);
  EXPECT_DOUBLE_EQ(back.rms_norm_eps, c.rms_norm_eps);
}

}  // namespace
}  // namespace xcomp
