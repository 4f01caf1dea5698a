// Hugging Face model directories: single-file and sharded weights checked against the
// config, with errors naming the file and tensor.
#include "io/hf_model.h"

#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "io/hf_config.h"
#include "io/safetensors.h"
#include "model/input_error.h"
#include "model/llama_weights.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {
using Named = std::vector<std::pair<std::string, Tensor>>;

LlamaConfig tiny_config(bool tied) {
  LlamaConfig c;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 4;
  c.vocab_size = 16;
  c.tie_word_embeddings = tied;
  return c;
}

// Every tensor of the config, filled with values that identify it.
Named tiny_tensors(const LlamaConfig& c) {
  Named named;
  float tag = 0;
  for (const auto& [name, shape] : llama_tensor_shapes(c)) {
    Tensor t = Tensor::empty(shape);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = tag + 0.001f * i;
    named.emplace_back(name, t);
    tag += 1;
  }
  return named;
}

void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    std::string m = e.what();
    for (const std::string& part : parts) EXPECT_NE(m.find(part), std::string::npos) << m;
  }
}

TEST(HfModel, SingleFileRoundTrip) {
  LlamaConfig c = tiny_config(false);
  std::string dir = test::temp_dir("hf_model") + "/model";
  Named named = tiny_tensors(c);
  write_hf_model_dir(dir, c, named);
  HfModelDir m = read_hf_model_dir(dir);
  EXPECT_EQ(m.config.source, dir + "/config.json");
  EXPECT_EQ(m.config.num_key_value_heads, 1);
  ASSERT_EQ(m.tensors.size(), named.size());
  for (const auto& [name, t] : named) {
    const Tensor& back = m.tensors.at(name);
    ASSERT_EQ(back.shape(), t.shape()) << name;
    EXPECT_EQ(back.data<float>()[back.numel() - 1], t.data<float>()[t.numel() - 1]) << name;
  }
  EXPECT_EQ(SafetensorsFile::open(dir + "/model.safetensors").metadata().at("format"), "pt");
}

TEST(HfModel, SkipsTiedHeadAndRotaryBuffers) {
  LlamaConfig c = tiny_config(true);
  std::string dir = test::temp_dir("hf_model");
  Named named = tiny_tensors(c);
  named.emplace_back("lm_head.weight", Tensor::zeros({16, 8}));
  named.emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq", Tensor::zeros({2}));
  write_hf_model_dir(dir, c, named);
  EXPECT_EQ(read_hf_model_dir(dir).tensors.size(), named.size() - 2);
}

TEST(HfModel, MissingExtraAndMisshapenTensors) {
  LlamaConfig c = tiny_config(false);
  std::string dir = test::temp_dir("hf_model");
  std::string file = dir + "/model.safetensors";

  Named missing = tiny_tensors(c);
  missing.pop_back();  // lm_head.weight
  write_hf_model_dir(dir, c, missing);
  expect_error([&] { read_hf_model_dir(dir); }, {file, "missing tensor lm_head.weight"});

  Named extra = tiny_tensors(c);
  extra.emplace_back("model.layers.0.self_attn.q_proj.bias", Tensor::zeros({8}));
  write_hf_model_dir(dir, c, extra);
  expect_error([&] { read_hf_model_dir(dir); }, {file, "unexpected tensor model.layers.0.self_attn.q_proj.bias"});

  Named misshapen = tiny_tensors(c);
  misshapen[3].second = Tensor::zeros({8, 4});  // k_proj should be [4, 8]
  write_hf_model_dir(dir, c, misshapen);
  expect_error([&] { read_hf_model_dir(dir); }, {file, misshapen[3].first, "[8, 4]", "[4, 8]"});

  Named ints = tiny_tensors(c);
  ints[1].second = Tensor::zeros({8}, DType::I32);
  write_hf_model_dir(dir, c, ints);
  expect_error([&] { read_hf_model_dir(dir); }, {file, ints[1].first, "I32"});
}

TEST(HfModel, NoWeightsAtAll) {
  std::string dir = test::temp_dir("hf_model");
  write_hf_config(tiny_config(false), dir + "/config.json");
  expect_error([&] { read_hf_model_dir(dir); }, {dir, "model.safetensors"});
}

// Two shards split at tensor `split`, with an index that lists them as written.
struct ShardedDir {
  std::string dir;
  std::string index;
  nlohmann::json weight_map;
};

ShardedDir write_sharded(const LlamaConfig& c, const Named& first, const Named& second) {
  ShardedDir s;
  s.dir = test::temp_dir("hf_sharded");
  s.index = s.dir + "/model.safetensors.index.json";
  write_hf_config(c, s.dir + "/config.json");
  write_safetensors(s.dir + "/model-00001-of-00002.safetensors", first, {{"format", "pt"}});
  write_safetensors(s.dir + "/model-00002-of-00002.safetensors", second, {{"format", "pt"}});
  for (const auto& [name, t] : first) s.weight_map[name] = "model-00001-of-00002.safetensors";
  for (const auto& [name, t] : second) s.weight_map[name] = "model-00002-of-00002.safetensors";
  return s;
}

void write_index(const ShardedDir& s) {
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", s.weight_map}};
  test::write_file(s.index, index.dump(2));
}

Named part(const Named& all, size_t begin, size_t end) { return Named(all.begin() + begin, all.begin() + end); }

TEST(HfModelSharded, LoadsTwoShards) {
  LlamaConfig c = tiny_config(false);
  Named all = tiny_tensors(c);
  ShardedDir s = write_sharded(c, part(all, 0, 7), part(all, 7, all.size()));
  write_index(s);
  HfModelDir m = read_hf_model_dir(s.dir);
  ASSERT_EQ(m.tensors.size(), all.size());
  EXPECT_EQ(m.tensors.at("lm_head.weight").data<float>()[5], all.back().second.data<float>()[5]);
}

TEST(HfModelSharded, MissingShardFile) {
  LlamaConfig c = tiny_config(false);
  Named all = tiny_tensors(c);
  ShardedDir s = write_sharded(c, part(all, 0, 7), part(all, 7, all.size()));
  s.weight_map["lm_head.weight"] = "model-00003-of-00002.safetensors";
  write_index(s);
  expect_error([&] { read_hf_model_dir(s.dir); }, {s.index, "model-00003-of-00002.safetensors", "lm_head.weight"});
}

TEST(HfModelSharded, TensorMissingFromItsShard) {
  LlamaConfig c = tiny_config(false);
  Named all = tiny_tensors(c);
  ShardedDir s = write_sharded(c, part(all, 0, 7), part(all, 7, all.size() - 1));
  s.weight_map["lm_head.weight"] = "model-00002-of-00002.safetensors";  // listed, but not written
  write_index(s);
  expect_error([&] { read_hf_model_dir(s.dir); }, {s.index, "lm_head.weight", "model-00002-of-00002.safetensors"});
}

TEST(HfModelSharded, TensorInTwoShards) {
  LlamaConfig c = tiny_config(false);
  Named all = tiny_tensors(c);
  ShardedDir s = write_sharded(c, part(all, 0, 8), part(all, 7, all.size()));  // tensor 7 in both
  write_index(s);
  expect_error([&] { read_hf_model_dir(s.dir); }, {all[7].first, "model-00001-of-00002.safetensors",
                                                   "model-00002-of-00002.safetensors"});
}

TEST(HfModelSharded, ShardTensorNotInIndex) {
  LlamaConfig c = tiny_config(false);
  Named all = tiny_tensors(c);
  ShardedDir s = write_sharded(c, part(all, 0, 7), part(all, 7, all.size()));
  s.weight_map.erase("model.norm.weight");
  write_index(s);
  expect_error([&] { read_hf_model_dir(s.dir); }, {"model.norm.weight", s.index});
}

TEST(HfModelSharded, MalformedIndex) {
  LlamaConfig c = tiny_config(false);
  Named all = tiny_tensors(c);
  ShardedDir s = write_sharded(c, part(all, 0, 7), part(all, 7, all.size()));
  test::write_file(s.index, "{\"weight_map\": [");
  expect_error([&] { read_hf_model_dir(s.dir); }, {s.index, "JSON"});
  s.weight_map["lm_head.weight"] = "../elsewhere.safetensors";
  write_index(s);
  expect_error([&] { read_hf_model_dir(s.dir); }, {s.index, "lm_head.weight"});
}

}  // namespace
}  // namespace xcomp
