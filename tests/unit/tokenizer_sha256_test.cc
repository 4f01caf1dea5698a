// Tokenizer::sha256: the hash of each tokenizer's defining file, and equal for a GGUF's
// tokenizer and the directory `xcomp convert` writes from it.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/gguf.h"
#include "io/gguf_llama.h"
#include "io/sha256.h"
#include "io/tokenizer.h"
#include "io/tokenizer_gguf.h"
#include "io/tokenizer_llama2c.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

TEST(TokenizerSha256, IsTheHashOfTheLoadedFile) {
  for (const char* relative : {"stories260K/tok512.model", "stories260K/tok512.bin", "llama3/tokenizer.model"}) {
    std::string path = test::fixture(relative);
    auto tok = load_tokenizer(path);
    EXPECT_EQ(tok->sha256(), sha256_file_hex(path)) << relative;
    EXPECT_EQ(tok->sha256().size(), 64u);
  }
}

TEST(TokenizerSha256, ScoredGgufVocabularyHashesTheWrittenTokenizerBin) {
  // A GGUF "llama" vocabulary, as tokenizer_from_gguf receives it, from tok512.bin's pieces.
  auto bin = load_tokenizer(test::fixture("stories260K/tok512.bin"));
  const auto& pieces = dynamic_cast<const Llama2cTokenizer&>(*bin).pieces();
  GgufTokenizerData data;
  data.model = "llama";
  data.source = "test.gguf";
  data.bos_id = 1;
  data.eos_id = 2;
  for (const ScoredPiece& p : pieces) {
    data.tokens.push_back(p.text);
    data.scores.push_back(p.score);
    data.token_types.push_back(p.kind == ScoredPiece::Kind::kControl ? 3 : p.kind == ScoredPiece::Kind::kByte ? 6 : 1);
  }
  auto direct = tokenizer_from_gguf(data);
  std::string written = write_tokenizer_from_gguf(data, test::temp_dir("sha256llama"));
  EXPECT_EQ(direct->sha256(), sha256_file_hex(written));
  EXPECT_EQ(load_tokenizer(written)->sha256(), direct->sha256());
}

TEST(TokenizerSha256, ByteLevelGgufHashesTheWrittenTokenizerJson) {
  std::string gguf = test::models_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(gguf)) GTEST_SKIP() << gguf << " is absent; launch/setup.sh downloads it";
  GgufTokenizerData data = read_gguf_tokenizer(GgufFile::open(gguf));
  auto direct = tokenizer_from_gguf(data);
  std::string dir = test::temp_dir("sha256smollm2");
  std::string written = write_tokenizer_from_gguf(data, dir);
  EXPECT_EQ(direct->sha256(), sha256_file_hex(written));
  EXPECT_EQ(load_tokenizer(dir)->sha256(), direct->sha256());
}

}  // namespace
}  // namespace xcomp
