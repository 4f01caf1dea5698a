// LLaMA-3's tiktoken tokenizer: ids equal to tiktoken's on every case of
// tests/reference/data/llama3_tokenizer_reference.json, lossless round trips, special
// tokens, load_tokenizer's content sniffing, and malformed rank files.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "io/sha256.h"
#include "io/tokenizer.h"
#include "io/tokenizer_tiktoken.h"
#include "model/input_error.h"
#include "tests/test_support.h"
#include "tests/unit/tokenizer_texts.h"

namespace xcomp {
namespace {

using nlohmann::json;

std::string llama3_ranks() { return test::fixture("llama3/tokenizer.model"); }

// Loading builds ~400k merge pairs; one instance serves every test here.
const Tokenizer& llama3() {
  static const std::unique_ptr<Tokenizer> tok = load_tokenizer(llama3_ranks());
  return *tok;
}


TEST(Llama3Tokenizer, MatchesTiktokenOnEveryReferenceCase) {
  auto cases = test::tokenizer_reference_cases("llama3_tokenizer_reference.json");
  ASSERT_GE(cases.size(), 600u);
  for (const auto& c : cases) {
    ASSERT_EQ(llama3().encode(c.text, c.parse_special), c.ids) << c.label;
    ASSERT_EQ(llama3().decode(c.ids), c.text) << c.label;
  }
}

TEST(Llama3Tokenizer, VocabularyAndSpecialTokens) {
  const Tokenizer& tok = llama3();
  EXPECT_EQ(tok.vocab_size(), 128256);
  EXPECT_EQ(tok.bos_id(), 128000);
  EXPECT_EQ(tok.eos_id(), 128001);
  EXPECT_EQ(tok.eot_id(), 128009);
  EXPECT_EQ(tok.token_text(128000), "<|begin_of_text|>");
  EXPECT_EQ(tok.token_text(128009), "<|eot_id|>");
  EXPECT_EQ(tok.token_text(128255), "<|reserved_special_token_250|>");
  EXPECT_EQ(tok.token_text(279), "\xC4\xA0the");  // "Ġthe", as Hugging Face's tokenizer.json spells it
  EXPECT_EQ(tok.encode("<|eot_id|>", true), (std::vector<int32_t>{128009}));
  EXPECT_GT(tok.encode("<|eot_id|>", false).size(), 1u);
  EXPECT_EQ(tok.decode({128000, 9906, 128009}, /*skip_special=*/true), "Hello");
  EXPECT_THROW(tok.decode({128256}), InputError);
  EXPECT_EQ(tok.sha256(), sha256_file_hex(llama3_ranks()));
}

TEST(Llama3Tokenizer, RoundTripsEveryFixtureText) {
  for (const auto& list : {test::tinystories_stories(), test::arxiv_abstracts(), test::squad_contexts()}) {
    for (const std::string& text : list) ASSERT_EQ(llama3().decode(llama3().encode(text)), text);
  }
}

// --- small rank files ----------------------------------------------------------------

std::string base64(const std::string& bytes) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[v & 63] : '=';
  }
  return out;
}

// The 256 bytes as ranks 0..255, then the extra tokens.
std::string rank_file(const std::vector<std::string>& extra) {
  std::string out;
  int rank = 0;
  for (int b = 0; b < 256; ++b) out += base64(std::string(1, static_cast<char>(b))) + " " + std::to_string(rank++) + "\n";
  for (const std::string& t : extra) out += base64(t) + " " + std::to_string(rank++) + "\n";
  return out;
}

TEST(TiktokenFile, SmallFileWithStandardSpecialTokens) {
  std::string dir = test::temp_dir("tiktoken");
  std::string path = dir + "/ranks.tiktoken";
  test::write_file(path, rank_file({"he", "ll", "hell", "hello", " w"}));
  EXPECT_TRUE(looks_like_tiktoken_file(path));
  auto tok = load_tokenizer(path);
  EXPECT_EQ(tok->vocab_size(), 261 + 256);
  EXPECT_EQ(tok->bos_id(), 261);
  EXPECT_EQ(tok->eos_id(), 262);
  EXPECT_EQ(tok->eot_id(), 270);
  EXPECT_EQ(tok->encode("hello world"), (std::vector<int32_t>{259, 260, 'o', 'r', 'l', 'd'}));
  EXPECT_EQ(tok->encode("hello"), (std::vector<int32_t>{259}));
  EXPECT_EQ(tok->encode("hell"), (std::vector<int32_t>{258}));
  EXPECT_EQ(tok->encode(" world"), (std::vector<int32_t>{260, 'o', 'r', 'l', 'd'}));
  EXPECT_EQ(tok->encode("hello<|end_of_text|>", true), (std::vector<int32_t>{259, 262}));
  EXPECT_EQ(tok->sha256(), sha256_file_hex(path));
}

TEST(TiktokenFile, NamedTokenizerModelIsSniffedByContent) {
  std::string dir = test::temp_dir("tiktokenmodel");
  test::write_file(dir + "/tokenizer.model", rank_file({"ab"}));
  auto tok = load_tokenizer(dir);  // the directory's tokenizer.model
  EXPECT_NE(tok->name().find("tiktoken"), std::string::npos) << tok->name();
  EXPECT_EQ(tok->encode("ab"), (std::vector<int32_t>{256}));
  EXPECT_FALSE(looks_like_tiktoken_file(test::fixture("stories260K/tok512.model")));
  EXPECT_EQ(load_tokenizer(test::fixture("stories260K/tok512.model"))->name().find("SentencePiece"), 0u);
}

TEST(TiktokenFile, ConfigBesideTheFileGivesSpecialTokens) {
  std::string dir = test::temp_dir("tiktokenconfig");
  test::write_file(dir + "/tokenizer.model", rank_file({}));
  json config = {{"bos_token", "<s>"},
                 {"eos_token", {{"content", "</s>"}}},
                 {"added_tokens_decoder",
                  {{"256", {{"content", "<s>"}, {"special", true}}}, {"257", {{"content", "</s>"}, {"special", true}}}}}};
  test::write_file(dir + "/tokenizer_config.json", config.dump());
  auto tok = load_tokenizer(dir + "/tokenizer.model");
  EXPECT_EQ(tok->vocab_size(), 258);
  EXPECT_EQ(tok->bos_id(), 256);
  EXPECT_EQ(tok->eos_id(), 257);
  EXPECT_EQ(tok->eot_id(), -1);
  EXPECT_EQ(tok->encode("a</s>", true), (std::vector<int32_t>{'a', 257}));
  config["added_tokens_decoder"]["12"] = {{"content", "<x>"}};
  test::write_file(dir + "/tokenizer_config.json", config.dump());
  std::string message = test::input_error([&] { load_tokenizer(dir + "/tokenizer.model"); });
  EXPECT_NE(message.find("added_tokens_decoder[\"12\"]"), std::string::npos) << message;
}

TEST(TiktokenFile, MalformedFilesNameFileAndLine) {
  std::string dir = test::temp_dir("badtiktoken");
  auto expect_error = [&](const std::string& name, const std::string& text, const std::string& what) {
    std::string path = dir + "/" + name;
    test::write_file(path, text);
    std::string message = test::input_error([&] { load_tiktoken_tokenizer(path); });
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(what), std::string::npos) << message;
  };
  std::string good = rank_file({"ab"});
  expect_error("badline.tiktoken", good + "YWJj\n", "line 258: expected");
  expect_error("badbase64.tiktoken", good + "Y*Jj 257\n", "line 258: expected");
  expect_error("twice.tiktoken", good + "YWJj 256\n", "line 258: rank 256 appears twice");
  expect_error("gap.tiktoken", good + "YWJj 300\n", "rank 257 is missing");
  expect_error("empty.tiktoken", "", "no ranks");
  expect_error("nobytes.tiktoken", "YWI= 0\n", "byte 0 is not a token");
  expect_error("huge.tiktoken", good + "YWJj 99999999999\n", "line 258");
}

}  // namespace
}  // namespace xcomp
