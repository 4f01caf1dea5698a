// llama2.c checkpoints: stories260K converted to a Hugging Face directory and read back,
// and malformed files rejected with the file named.
#include "io/llama2c.h"

#include <gtest/gtest.h>

#include <functional>
#include <cstring>

#include "io/hf_model.h"
#include "model/input_error.h"
#include "model/llama_weights.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

std::string stories_bin() { return test::fixture("stories260K/stories260K.bin"); }

// The raw fp32 array at float offset `floats` past the 28-byte header.
const float* raw_floats(const std::string& bytes, size_t floats) {
  return reinterpret_cast<const float*>(bytes.data() + 28) + floats;
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

TEST(Llama2c, ConvertsStories260K) {
  std::string out = test::temp_dir("llama2c") + "/stories260K";
  convert_llama2c(stories_bin(), out, test::fixture("stories260K/tok512.model"));
  EXPECT_EQ(test::read_file(out + "/tokenizer.model"), test::read_file(test::fixture("stories260K/tok512.model")));

  HfModelDir m = read_hf_model_dir(out);
  const LlamaConfig& c = m.config;
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.num_hidden_layers, 5);
  EXPECT_EQ(c.num_attention_heads, 8);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_position_embeddings, 512);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_EQ(m.tensors.count("lm_head.weight"), 0u);  // tied: the embedding is the head
  EXPECT_EQ(m.tensors.size(), llama_tensor_shapes(c).size());

  // Raw offsets (in floats) of the llama2.c arrays, following run.c's order.
  const size_t dim = 64, kv = 32, L = 5, vocab = 512;
  const size_t embed_at = 0, rms_att_at = vocab * dim, wq_at = rms_att_at + L * dim, wk_at = wq_at + L * dim * dim;
  std::string raw = test::read_file(stories_bin());
  const Tensor& embed = m.tensors.at("model.embed_tokens.weight");
  EXPECT_EQ(std::memcmp(embed.raw(), raw_floats(raw, embed_at), vocab * dim * 4), 0);
  EXPECT_EQ(std::memcmp(m.tensors.at("model.layers.2.input_layernorm.weight").raw(),
                        raw_floats(raw, rms_att_at + 2 * dim), dim * 4), 0);

  // q and k rows are the raw rows, permuted within each head (head_dim 8): new row
  // h*8 + i = old row h*8 + 2i, new row h*8 + 4 + i = old row h*8 + 2i + 1.
  for (size_t layer : {0u, 4u}) {
    const float* q = m.tensors.at("model.layers." + std::to_string(layer) + ".self_attn.q_proj.weight").data<float>();
    const float* k = m.tensors.at("model.layers." + std::to_string(layer) + ".self_attn.k_proj.weight").data<float>();
    const float* raw_q = raw_floats(raw, wq_at + layer * dim * dim);
    const float* raw_k = raw_floats(raw, wk_at + layer * kv * dim);
    for (size_t h = 0; h < 8; ++h) {
      for (size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(std::memcmp(q + (h * 8 + i) * dim, raw_q + (h * 8 + 2 * i) * dim, dim * 4), 0);
        EXPECT_EQ(std::memcmp(q + (h * 8 + 4 + i) * dim, raw_q + (h * 8 + 2 * i + 1) * dim, dim * 4), 0);
        if (h < 4) {
          EXPECT_EQ(std::memcmp(k + (h * 8 + i) * dim, raw_k + (h * 8 + 2 * i) * dim, dim * 4), 0);
          EXPECT_EQ(std::memcmp(k + (h * 8 + 4 + i) * dim, raw_k + (h * 8 + 2 * i + 1) * dim, dim * 4), 0);
        }
      }
    }
  }
}

TEST(Llama2c, CopiesALlama2cTokenizer) {
  std::string out = test::temp_dir("llama2c") + "/m";
  convert_llama2c(stories_bin(), out, test::fixture("stories260K/tok512.bin"));
  EXPECT_EQ(test::read_file(out + "/tokenizer.bin"), test::read_file(test::fixture("stories260K/tok512.bin")));
}

TEST(Llama2c, RefusesOtherTokenizers) {
  std::string dir = test::temp_dir("llama2c");
  // LLaMA-3's tiktoken ranks file is also called tokenizer.model.
  expect_error([&] { convert_llama2c(stories_bin(), dir + "/a", test::fixture("llama3/tokenizer.model")); },
               {"llama3/tokenizer.model", "SentencePiece"});
  test::write_file(dir + "/tok.json", "{}");
  expect_error([&] { convert_llama2c(stories_bin(), dir + "/b", dir + "/tok.json"); }, {dir + "/tok.json"});
  test::write_file(dir + "/junk.bin", std::string(11, '\x05'));
  expect_error([&] { convert_llama2c(stories_bin(), dir + "/c", dir + "/junk.bin"); }, {dir + "/junk.bin"});
}

TEST(Llama2c, TruncatedFileNamesTheFileAndSizes) {
  std::string raw = test::read_file(stories_bin());
  std::string path = test::temp_dir("llama2c") + "/truncated.bin";
  test::write_file(path, raw.substr(0, raw.size() - 100));
  expect_error([&] { read_llama2c(path); }, {path, std::to_string(raw.size() - 100), std::to_string(raw.size())});
  test::write_file(path, raw.substr(0, 10));
  expect_error([&] { read_llama2c(path); }, {path, "header"});
}

TEST(Llama2c, BadHeaders) {
  std::string raw = test::read_file(stories_bin());
  std::string path = test::temp_dir("llama2c") + "/bad.bin";
  auto with_field = [&](int index, int32_t value) {
    std::string bytes = raw;
    std::memcpy(&bytes[4 * index], &value, 4);
    test::write_file(path, bytes);
  };
  with_field(3, 7);  // n_heads 7 does not divide dim 64
  expect_error([&] { read_llama2c(path); }, {path, "n_heads"});
  with_field(4, 3);  // n_kv_heads 3 does not divide 8 heads
  expect_error([&] { read_llama2c(path); }, {path, "n_kv_heads"});
  with_field(0, -64);
  expect_error([&] { read_llama2c(path); }, {path, "dim"});
  with_field(2, 0x7fffffff);  // absurd layer count: the size check must not overflow
  expect_error([&] { read_llama2c(path); }, {path});
  with_field(5, -512);  // unshared classifier claimed, but no wcls follows
  expect_error([&] { read_llama2c(path); }, {path, "unshared"});
}

}  // namespace
}  // namespace xcomp
