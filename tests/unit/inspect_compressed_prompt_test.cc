// xcomp inspect on .xkv files: vector lengths summarised right, the model's input token
// embeddings read alone (a GGUF file's one tensor dequantised, a llama2.c file's copied),
// and the command's report of an embedding-mode prompt beside its model's embeddings.
#include "trainer/inspect_compressed_prompt.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <sstream>

#include "io/compressed_prompt_file.h"
#include "io/model_loader.h"
#include "io/safetensors.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

Tensor from(Shape shape, std::vector<float> values) {
  Tensor t = Tensor::empty(std::move(shape));
  EXPECT_EQ(static_cast<size_t>(t.numel()), values.size());
  std::copy(values.begin(), values.end(), t.data<float>());
  return t;
}

void expect_equal(const Tensor& got, const Tensor& want) {
  ASSERT_EQ(got.shape(), want.shape());
  ASSERT_EQ(got.dtype(), DType::F32);
  EXPECT_EQ(std::memcmp(got.data<float>(), want.to_f32().data<float>(), got.nbytes()), 0);
}

// A line of the command's report with the statistics spelt as it prints them.
std::string lengths_line(const VectorLengths& l) {
  char text[128];
  std::snprintf(text, sizeof text, "min %.3f  median %.3f  max %.3f", l.min, l.median, l.max);
  return text;
}

TEST(VectorLengths, SummariseEachRowsNorm) {
  // Rows of length 5, 0, 1 and 13.
  const VectorLengths four = vector_lengths(from({2, 2, 2}, {3, 4, 0, 0, 1, 0, 5, 12}));
  EXPECT_EQ(four.count, 4);
  EXPECT_DOUBLE_EQ(four.min, 0);
  EXPECT_DOUBLE_EQ(four.median, 3);  // (1 + 5) / 2: an even count takes the middle two
  EXPECT_DOUBLE_EQ(four.max, 13);
  const VectorLengths three = vector_lengths(from({3, 2}, {3, 4, 0, 0, 1, 0}));
  EXPECT_DOUBLE_EQ(three.median, 1);
}

TEST(TokenEmbeddings, GgufDequantisesTheOneTensor) {
  const std::string toy = test::source_dir() + "/tests/reference/data/toy_llama.gguf";
  const SafetensorsFile expected =
      SafetensorsFile::open(test::source_dir() + "/tests/reference/data/toy_llama.expected.safetensors");
  expect_equal(load_token_embeddings(toy), expected.tensor("token_embd.weight"));
}

TEST(TokenEmbeddings, Llama2cIsTheLoadedModelsTensor) {
  const std::string bin = test::fixture("stories260K/stories260K.bin");
  const LoadedModel model = load_model(bin, test::fixture("stories260K/tok512.model"));
  expect_equal(load_token_embeddings(bin), model.tensors.at("model.embed_tokens.weight"));
}

TEST(InspectCommand, EmbeddingPromptBesideItsModelsTokenEmbeddings) {
  const std::string model = test::fixture("stories260K/stories260K.bin");
  CompressedPromptFile f;
  f.prompt.mode = CompressorMode::kEmbedding;
  std::vector<float> slots(2 * 64, 0.0f);
  slots[0] = 30, slots[1] = 40;  // length 50
  slots[64] = -7;                // length 7
  f.prompt.embeddings = from({1, 2, 64}, slots);
  std::vector<float> ae(64, 0.0f);
  ae[5] = 0.25f;
  f.ae_token = from({1, 64}, ae);
  f.prompt.text_lengths = {96};
  f.source_bytes = 400;
  f.model_sha256 = std::string(64, 'a');
  f.model_source = model;  // found there, so the report compares without --model
  f.checkpoint_sha256 = std::string(64, 'b');
  const std::string path = test::temp_dir("inspect") + "/doc.xkv";
  write_compressed_prompt(path, f);

  const test::CommandResult r = test::run_xcomp("inspect '" + path + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("mode embedding, 2 token(s) for 96 text tokens (48x)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  embeddings              2 x 64  min 7.000  median 28.500  max 50.000\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("  ae_token                1 x 64  0.250\n"), std::string::npos) << r.out;
  const std::string tokens = "  model token embeddings  512 x 64  " +
                             lengths_line(vector_lengths(load_token_embeddings(model))) + "\n";
  EXPECT_NE(r.out.find(tokens), std::string::npos) << r.out << "\nexpected " << tokens;

  EXPECT_EQ(r.out.find("scaled"), std::string::npos) << r.out;

  // A prompt made with compressor.memory_scale says so beside its (already scaled) slots.
  CompressedPromptFile scaled = f;
  scaled.memory_scale = 0.5f;
  const std::string scaled_path = test::temp_dir("inspect") + "/scaled.xkv";
  write_compressed_prompt(scaled_path, scaled);
  const test::CommandResult s = test::run_xcomp("inspect '" + scaled_path + "'");
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_NE(s.out.find("(48x), slots scaled by 0.5 (compressor.memory_scale"), std::string::npos) << s.out;

  // Naming the model gives the same report.
  const test::CommandResult m = test::run_xcomp("inspect '" + path + "' --model '" + model + "'");
  EXPECT_EQ(m.exit_code, 0) << m.err;
  EXPECT_EQ(m.out, r.out);

  // A K/V prompt's vectors are not in token-embedding space: --model is refused, by name.
  CompressedPromptFile kv = f;
  kv.prompt.mode = CompressorMode::kKeyValue;
  kv.prompt.embeddings = Tensor();
  kv.prompt.keys = {from({1, 2, 1, 2}, {3, 4, 0, 1})};
  kv.prompt.values = {from({1, 2, 1, 2}, {0, 2, 6, 8})};
  const std::string kv_path = test::temp_dir("inspect") + "/kv.xkv";
  write_compressed_prompt(kv_path, kv);
  const test::CommandResult k = test::run_xcomp("inspect '" + kv_path + "'");
  ASSERT_EQ(k.exit_code, 0) << k.err;
  EXPECT_NE(k.out.find("  keys (after RoPE)       1 layers x 2 x 1 heads x 2  min 1.000  median 3.000  max 5.000\n"),
            std::string::npos)
      << k.out;
  EXPECT_NE(k.out.find("  values                  1 layers x 2 x 1 heads x 2  min 2.000  median 6.000  max 10.000\n"),
            std::string::npos)
      << k.out;
  const test::CommandResult kv_model = test::run_xcomp("inspect '" + kv_path + "' --model '" + model + "'");
  EXPECT_NE(kv_model.exit_code, 0);
  EXPECT_NE(kv_model.err.find("--model: " + kv_path + " is a K/V prompt"), std::string::npos) << kv_model.err;

  const test::CommandResult not_prompt = test::run_xcomp("inspect '" + model + "' --model '" + model + "'");
  EXPECT_NE(not_prompt.exit_code, 0);
  EXPECT_NE(not_prompt.err.find("--model is for a compressed prompt (.xkv)"), std::string::npos) << not_prompt.err;
}

}  // namespace
}  // namespace xcomp
