// .xkv files: what is written reads back (both modes), and what is not a compressed
// prompt, or was made with another model, is refused by name.
#include "io/compressed_prompt_file.h"

#include <gtest/gtest.h>

#include <map>

#include "io/safetensors.h"
#include "model/input_error.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

Tensor counting(Shape shape, float start) {
  Tensor t = Tensor::empty(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = start + static_cast<float>(i);
  return t;
}

CompressedPromptFile kv_file() {
  CompressedPromptFile f;
  f.prompt.mode = CompressorMode::kKeyValue;
  for (int layer = 0; layer < 2; ++layer) {
    f.prompt.keys.push_back(counting({1, 3, 2, 4}, 100.0f * layer));
    f.prompt.values.push_back(counting({1, 3, 2, 4}, 100.0f * layer + 50));
  }
  f.prompt.text_lengths = {17};
  f.decoder_positions = DecoderPositions::kAfterPrefix;
  f.source_bytes = 80;
  f.model_sha256 = std::string(64, 'a');
  f.model_source = "tiny";
  f.checkpoint_sha256 = std::string(64, 'b');
  return f;
}

TEST(CompressedPromptFile, KeyValuePromptReadsBack) {
  const std::string path = test::temp_dir("xkv") + "/kv.xkv";
  write_compressed_prompt(path, kv_file());
  const CompressedPromptFile r = read_compressed_prompt(path);
  EXPECT_EQ(r.prompt.mode, CompressorMode::kKeyValue);
  ASSERT_EQ(r.prompt.keys.size(), 2u);
  EXPECT_EQ(r.prompt.keys[1].shape(), (Shape{1, 3, 2, 4}));
  EXPECT_EQ(r.prompt.keys[1].data<float>()[5], 105.0f);
  EXPECT_EQ(r.prompt.values[0].data<float>()[0], 50.0f);
  EXPECT_EQ(r.prompt.text_lengths, std::vector<int64_t>{17});
  EXPECT_EQ(r.decoder_positions, DecoderPositions::kAfterPrefix);
  EXPECT_EQ(r.source_bytes, 80);
  EXPECT_EQ(r.checkpoint_sha256, std::string(64, 'b'));
  EXPECT_EQ(SafetensorsFile::open(path).metadata().at("num_tokens"), "3");
}

TEST(CompressedPromptFile, EmbeddingPromptKeepsItsAeToken) {
  CompressedPromptFile f = kv_file();
  f.prompt.mode = CompressorMode::kEmbedding;
  f.prompt.keys.clear();
  f.prompt.values.clear();
  f.prompt.embeddings = counting({1, 4, 8}, 1);
  f.ae_token = counting({1, 8}, -3);
  const std::string path = test::temp_dir("xkv") + "/emb.xkv";
  write_compressed_prompt(path, f);
  const CompressedPromptFile r = read_compressed_prompt(path);
  EXPECT_EQ(r.prompt.mode, CompressorMode::kEmbedding);
  EXPECT_EQ(r.prompt.embeddings.shape(), (Shape{1, 4, 8}));
  EXPECT_EQ(r.prompt.embeddings.data<float>()[31], 32.0f);
  EXPECT_EQ(r.ae_token.shape(), (Shape{1, 8}));
  EXPECT_EQ(r.ae_token.data<float>()[0], -3.0f);
  EXPECT_EQ(r.memory_scale, 1.0f);
  EXPECT_EQ(SafetensorsFile::open(path).metadata().at("memory_scale"), "1");

  // compressor.memory_scale's factor is recorded exactly; a file without it reads as 1.
  f.memory_scale = 0.07f;
  write_compressed_prompt(path, f);
  EXPECT_EQ(SafetensorsFile::open(path).metadata().at("memory_scale"), "0.07");
  EXPECT_EQ(read_compressed_prompt(path).memory_scale, 0.07f);
}

TEST(CompressedPromptFile, OtherSafetensorsFilesAreRefused) {
  const std::string path = test::temp_dir("xkv") + "/weights.safetensors";
  write_safetensors(path, {{"w", counting({2, 2}, 0)}});
  EXPECT_NE(test::input_error([&] { read_compressed_prompt(path); }).find("not a compressed prompt"),
            std::string::npos);
}

TEST(CompressedPromptFile, MalformedMemoryScaleIsRefusedByName) {
  const std::string good = test::temp_dir("xkv") + "/emb.xkv";
  CompressedPromptFile f = kv_file();
  f.prompt.mode = CompressorMode::kEmbedding;
  f.prompt.keys.clear();
  f.prompt.values.clear();
  f.prompt.embeddings = counting({1, 2, 4}, 1);
  f.ae_token = counting({1, 4}, 0);
  write_compressed_prompt(good, f);
  const SafetensorsFile written = SafetensorsFile::open(good);
  for (const char* bad : {"", "0.5x", "-1", "0"}) {
    std::map<std::string, std::string> metadata = written.metadata();
    metadata["memory_scale"] = bad;
    const std::string path = test::temp_dir("xkv") + "/bad.xkv";
    write_safetensors(path, {{"embeddings", written.tensor("embeddings")}, {"ae_token", written.tensor("ae_token")}},
                      metadata);
    const std::string message = test::input_error([&] { read_compressed_prompt(path); });
    EXPECT_NE(message.find(path + ": metadata memory_scale is not a positive number: '" + bad + "'"),
              std::string::npos)
        << message;
  }
}

TEST(CompressedPromptFile, AnotherModelIsRefusedNamingBoth) {
  const CompressedPromptFile f = kv_file();
  EXPECT_NO_THROW(check_prompt_model(f, "doc.xkv", std::string(64, 'a'), "tiny"));
  const std::string message =
      test::input_error([&] { check_prompt_model(f, "doc.xkv", std::string(64, 'c'), "other"); });
  EXPECT_NE(message.find("doc.xkv was compressed with another model (tiny"), std::string::npos) << message;
  EXPECT_NE(message.find("than other"), std::string::npos) << message;
}

}  // namespace
}  // namespace xcomp
