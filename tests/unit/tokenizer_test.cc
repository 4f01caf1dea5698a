// SentencePiece (.model) and llama2.c (.bin) tokenizers over stories260K's 512-piece
// vocabulary: known ids, lossless round trips (byte fallback included), load_tokenizer's
// dispatch, and malformed files.
#include <gtest/gtest.h>

#include <filesystem>
#include <cstring>
#include <functional>

#include "io/tokenizer.h"
#include "io/tokenizer_gguf.h"
#include "io/tokenizer_llama2c.h"
#include "model/input_error.h"
#include "tests/test_support.h"
#include "tests/unit/tokenizer_texts.h"

namespace xcomp {
namespace {

const char* kLily = "Once upon a time, there was a little girl named Lily.";
const std::vector<int32_t> kLilyIds = {403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426};

std::string tok512(const char* ext) { return test::fixture(std::string("stories260K/tok512.") + ext); }

class Tok512 : public ::testing::TestWithParam<const char*> {
 protected:
  std::unique_ptr<Tokenizer> tok = load_tokenizer(tok512(GetParam()));
};

TEST_P(Tok512, KnownIds) {
  EXPECT_EQ(tok->encode(kLily), kLilyIds);
  EXPECT_EQ(tok->decode(kLilyIds), kLily);
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->token_text(1), "<s>");
  EXPECT_TRUE(tok->encode("").empty());
}

TEST_P(Tok512, RoundTripsStories) {
  auto stories = test::tinystories_stories();
  ASSERT_GT(stories.size(), 2000u);
  for (size_t i = 0; i < stories.size(); ++i) {
    ASSERT_EQ(tok->decode(tok->encode(stories[i])), stories[i]) << "story " << i;
  }
}

TEST_P(Tok512, RoundTripsArxivAbstracts) {
  auto abstracts = test::arxiv_abstracts();
  ASSERT_EQ(abstracts.size(), 200u);
  for (size_t i = 0; i < abstracts.size(); ++i) {
    ASSERT_EQ(tok->decode(tok->encode(abstracts[i])), abstracts[i]) << "abstract " << i;
  }
}

TEST_P(Tok512, ByteFallbackRoundTrips) {
  for (std::string text : {"中文字符 and emoji 😀👍🏽", "naïve café — “quotes”", "  two  spaces\n\nand lines\t",
                           "\x01\x7f control bytes", "<s> is text here </s>"}) {
    std::vector<int32_t> ids = tok->encode(text);
    EXPECT_EQ(tok->decode(ids), text);
  }
  // 中 is not a piece: it falls back to its three UTF-8 bytes, ids byte + 3.
  std::vector<int32_t> ids = tok->encode("中");
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(std::vector<int32_t>(ids.end() - 3, ids.end()), (std::vector<int32_t>{0xE4 + 3, 0xB8 + 3, 0xAD + 3}));
}

TEST_P(Tok512, ControlTokensDecodeAsText) {
  std::vector<int32_t> ids = {1};
  std::vector<int32_t> lily = tok->encode(kLily);
  ids.insert(ids.end(), lily.begin(), lily.end());
  ids.push_back(2);
  EXPECT_EQ(tok->decode(ids), std::string("<s>") + kLily + "</s>");
  EXPECT_EQ(tok->decode(ids, /*skip_special=*/true), kLily);
  EXPECT_THROW(tok->decode({512}), InputError);
  EXPECT_THROW(tok->decode({-1}), InputError);
}

INSTANTIATE_TEST_SUITE_P(Formats, Tok512, ::testing::Values("model", "bin"));

TEST(Tokenizer, SentencePieceAndLlama2cAgreeOnArxiv) {
  auto sp = load_tokenizer(tok512("model"));
  auto l2c = load_tokenizer(tok512("bin"));
  for (const std::string& text : test::arxiv_abstracts()) ASSERT_EQ(sp->encode(text), l2c->encode(text)) << text;
}

TEST(Tokenizer, Llama2cParsesControlTokensOnlyWhenAsked) {
  auto tok = load_tokenizer(tok512("bin"));
  std::string text = std::string("<s>") + kLily;
  std::vector<int32_t> expected = {1};
  expected.insert(expected.end(), kLilyIds.begin(), kLilyIds.end());
  EXPECT_EQ(tok->encode(text, /*parse_special=*/true), expected);
  EXPECT_NE(tok->encode(text).front(), 1);
  EXPECT_EQ(tok->decode(tok->encode(text, true)), text);
}

TEST(Tokenizer, LoadsFromDirectoryInOrder) {
  std::string dir = test::temp_dir("tokdir");
  EXPECT_NE(test::input_error([&] { load_tokenizer(dir); }).find(dir), std::string::npos);
  std::filesystem::copy_file(tok512("bin"), dir + "/tokenizer.bin");
  EXPECT_NE(load_tokenizer(dir)->name().find("llama2.c"), std::string::npos);
  std::filesystem::copy_file(tok512("model"), dir + "/tokenizer.model");
  EXPECT_NE(load_tokenizer(dir)->name().find("SentencePiece"), std::string::npos);
}

TEST(Tokenizer, GgufLlamaVocabularyMatchesSentencePiece) {
  // A GGUF "llama" vocabulary is SentencePiece's pieces (U+2581 for spaces) with scores
  // and types; build one from tok512.bin's pieces.
  auto bin = load_llama2c_tokenizer(tok512("bin"));
  const auto& pieces = dynamic_cast<const Llama2cTokenizer&>(*bin).pieces();
  GgufTokenizerData data;
  data.model = "llama";
  data.source = "test.gguf";
  data.bos_id = 1;
  data.eos_id = 2;
  for (const ScoredPiece& p : pieces) {
    std::string text = p.text;
    for (size_t at; (at = text.find(' ')) != std::string::npos;) text.replace(at, 1, "\xE2\x96\x81");
    data.tokens.push_back(text);
    data.scores.push_back(p.score);
    data.token_types.push_back(p.kind == ScoredPiece::Kind::kControl ? 3
                               : p.kind == ScoredPiece::Kind::kUnknown ? 2
                               : p.kind == ScoredPiece::Kind::kByte    ? 6
                                                                       : 1);
  }
  auto tok = tokenizer_from_gguf(data);
  EXPECT_EQ(tok->encode(kLily), kLilyIds);
  std::string dir = test::temp_dir("ggufllama");
  std::string path = write_tokenizer_from_gguf(data, dir);
  EXPECT_EQ(path, dir + "/tokenizer.bin");
  EXPECT_EQ(test::read_file(path).size(), test::read_file(tok512("bin")).size() - 4);  // no "\n" around <s>, </s>
  auto reloaded = load_tokenizer(dir);
  for (const std::string& text : test::arxiv_abstracts()) ASSERT_EQ(reloaded->encode(text), bin->encode(text));
}

TEST(Tokenizer, MalformedLlama2cFilesNameTheFile) {
  std::string good = test::read_file(tok512("bin"));
  std::string dir = test::temp_dir("badbin");
  auto expect_error = [&](const std::string& name, const std::string& bytes, const std::string& what) {
    std::string path = dir + "/" + name;
    test::write_file(path, bytes);
    std::string message = test::input_error([&] { load_tokenizer(path); });
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(what), std::string::npos) << message;
  };
  expect_error("empty.bin", "", "too short");
  expect_error("truncated.bin", good.substr(0, good.size() - 3), "remain");
  expect_error("cut_header.bin", good.substr(0, 4 + 5), "truncated at token 0");
  std::string long_length = good;
  int32_t huge = 1 << 30;
  std::memcpy(&long_length[4 + 4], &huge, 4);  // token 0's length
  expect_error("length.bin", long_length, "token 0 has length");
  std::string negative = good;
  int32_t minus = -5;
  std::memcpy(&negative[4 + 4], &minus, 4);
  expect_error("negative.bin", negative, "token 0 has length -5");
  expect_error("not_sp.model", "this is not a protobuf", "SentencePiece");
  expect_error("tokenizer.txt", "x", "unknown tokenizer file type");
  EXPECT_NE(test::input_error([&] { load_tokenizer(dir + "/missing.bin"); }).find("missing.bin"), std::string::npos);
}

TEST(Tokenizer, EveryTruncationOfLlama2cFileLoadsOrNamesTheFile) {
  std::string good = test::read_file(tok512("bin"));
  std::string path = test::temp_dir("cutbin") + "/tokenizer.bin";
  for (size_t size = 0; size < good.size(); size += 13) {
    test::write_file(path, good.substr(0, size));
    try {
      auto tok = load_tokenizer(path);  // cut exactly between tokens: a shorter vocabulary
      tok->decode(tok->encode("Once upon a time"));
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace xcomp
