// Byte-level BPE: the BPE core, PCRE2 pre-tokenization, added tokens, tokenizer.json
// reading, and SmolLM2's tokenizer from its GGUF against Hugging Face's ids
// (tests/reference/data/smollm2_tokenizer_reference.json).
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "io/added_tokens.h"
#include "io/bpe.h"
#include "io/gguf.h"
#include "io/gguf_llama.h"
#include "io/gpt2_byte_unicode.h"
#include "io/pretokenizer.h"
#include "io/tokenizer.h"
#include "io/tokenizer_gguf.h"
#include "model/input_error.h"
#include "tests/test_support.h"
#include "tests/unit/tokenizer_texts.h"

namespace xcomp {
namespace {

using nlohmann::json;

// The 256 single bytes as ids 0..255, then the given extra tokens.
std::vector<std::string> byte_vocab(std::vector<std::string> extra) {
  std::vector<std::string> v;
  for (int b = 0; b < 256; ++b) v.emplace_back(1, static_cast<char>(b));
  v.insert(v.end(), extra.begin(), extra.end());
  return v;
}

TEST(BytePairEncoder, AppliesMergesByPriority) {
  BytePairEncoder bpe(byte_vocab({"ab", "bc", "abc", "aa"}));
  // "b c" outranks "a b": "abc" must come from "a" + "bc", which needs its own merge.
  bpe.add_merges({{"b", "c"}, {"a", "b"}, {"a", "bc"}, {"a", "a"}}, "test");
  EXPECT_EQ(bpe.encode("abc"), (std::vector<int32_t>{258}));
  EXPECT_EQ(bpe.encode("ab"), (std::vector<int32_t>{256}));
  EXPECT_EQ(bpe.encode("aaa"), (std::vector<int32_t>{259, 'a'}));  // equal ranks: leftmost first
  EXPECT_EQ(bpe.encode("xyz"), (std::vector<int32_t>{'x', 'y', 'z'}));
  EXPECT_TRUE(bpe.encode("").empty());
  EXPECT_NE(test::input_error([&] { bpe.add_merges({{"q", "zz"}}, "merges.txt"); }).find("merges.txt: merge 0"),
            std::string::npos);
}

TEST(BytePairEncoder, RankMergesFollowTheMergedTokensRank) {
  // tiktoken: ids are ranks; "abc" (rank 258) is reachable from "ab" + "c" or "a" + "bc".
  BytePairEncoder bpe(byte_vocab({"bc", "ab", "abc"}));
  bpe.add_rank_merges();
  EXPECT_EQ(bpe.encode("abc"), (std::vector<int32_t>{258}));
  EXPECT_EQ(bpe.encode("abd"), (std::vector<int32_t>{257, 'd'}));
  EXPECT_EQ(bpe.encode("bcd"), (std::vector<int32_t>{256, 'd'}));
}

TEST(BytePairEncoder, WholePieceLookupSkipsMerging) {
  BytePairEncoder bpe(byte_vocab({"abc"}));  // no merge leads to "abc"
  EXPECT_EQ(bpe.encode("abc").size(), 3u);
  bpe.set_whole_piece_lookup(true);
  EXPECT_EQ(bpe.encode("abc"), (std::vector<int32_t>{256}));
}

TEST(BytePairEncoder, MissingBytesAreDroppedOrUnknown) {
  std::vector<std::string> v = byte_vocab({"ab"});
  v[0x04].clear();
  BytePairEncoder dropping(v);
  dropping.add_merges({{"a", "b"}}, "test");
  EXPECT_EQ(dropping.encode("a\x04" "b"), (std::vector<int32_t>{256}));  // as Hugging Face without unk_token
  EXPECT_TRUE(dropping.encode("\x04").empty());
  BytePairEncoder unknown(v, /*unk_id=*/0);
  EXPECT_EQ(unknown.encode("a\x04"), (std::vector<int32_t>{'a', 0}));
}

TEST(Gpt2ByteUnicode, RoundTripsEveryByte) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  EXPECT_EQ(bytes_from_gpt2_unicode(gpt2_unicode_from_bytes(all)), all);
  EXPECT_EQ(gpt2_unicode_from_bytes(" hi\n"), "\xC4\xA0hi\xC4\x8A");  // "Ġhi" + "Ċ"
  EXPECT_FALSE(bytes_from_gpt2_unicode("\xE4\xB8\xAD").has_value());   // 中 is not in the alphabet
}

std::vector<std::string> split(const PreTokenizer& pre, const std::string& text) { return pre.split(text, "test"); }

TEST(PreTokenizer, Gpt2Regex) {
  PreTokenizer pre;
  pre.add_split(kGpt2Pattern, SplitBehavior::kIsolated, false, "test");
  EXPECT_EQ(split(pre, "Hello world's  2024 café!!\n"),
            (std::vector<std::string>{"Hello", " world", "'s", " ", " 2024", " café", "!!", "\n"}));
  EXPECT_TRUE(split(pre, "").empty());
  std::string message = test::input_error([&] { pre.split("bad \xFF utf8", "tok.json"); });
  EXPECT_NE(message.find("tok.json: text is not valid UTF-8 near byte 4"), std::string::npos) << message;
}

TEST(PreTokenizer, DigitsThenByteLevelAsSmolLM2) {
  PreTokenizer pre;
  pre.add_split(R"(\p{N})", SplitBehavior::kIsolated, false, "test");
  pre.add_split(kGpt2Pattern, SplitBehavior::kIsolated, false, "test");
  EXPECT_EQ(split(pre, "in 123 ways"), (std::vector<std::string>{"in", " ", "1", "2", "3", " ways"}));
}

TEST(PreTokenizer, Llama3Regex) {
  PreTokenizer pre;
  pre.add_split(kLlama3Pattern, SplitBehavior::kIsolated, false, "test");
  EXPECT_EQ(split(pre, "I'M 12345 ok\n\n"), (std::vector<std::string>{"I", "'M", " ", "123", "45", " ok", "\n\n"}));
}

TEST(PreTokenizer, SplitBehaviours) {
  auto run = [](SplitBehavior b, bool invert = false) {
    PreTokenizer pre;
    pre.add_split("-", b, invert, "test");
    return pre.split("a-b--c", "test");
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(run(SplitBehavior::kIsolated), (V{"a", "-", "b", "-", "-", "c"}));
  EXPECT_EQ(run(SplitBehavior::kRemoved), (V{"a", "b", "c"}));
  EXPECT_EQ(run(SplitBehavior::kMergedWithPrevious), (V{"a-", "b-", "-", "c"}));
  EXPECT_EQ(run(SplitBehavior::kMergedWithNext), (V{"a", "-b", "-", "-c"}));
  EXPECT_EQ(run(SplitBehavior::kContiguous), (V{"a", "-", "b", "--", "c"}));
  EXPECT_EQ(run(SplitBehavior::kRemoved, /*invert=*/true), (V{"-", "-", "-"}));
  PreTokenizer prefix;
  prefix.add_prefix_space();
  EXPECT_EQ(prefix.split("hi", "test"), V{" hi"});
  EXPECT_EQ(prefix.split(" hi", "test"), V{" hi"});
  PreTokenizer bad;
  EXPECT_NE(test::input_error([&] { bad.add_split("(unclosed", SplitBehavior::kIsolated, false, "t.json: pre_tokenizer"); })
                .find("t.json: pre_tokenizer: regex does not compile"),
            std::string::npos);
}

TEST(AddedTokenSplitter, LeftmostLongestAndSpecialOnlyWhenAsked) {
  AddedTokenSplitter s({{10, "<a>", true}, {11, "<a><b>", true}, {12, "[x]", false, false, true}});
  auto parts = s.split("hi<a><b> <a>[x]  end", true);
  ASSERT_EQ(parts.size(), 6u);
  EXPECT_EQ(parts[0].text, "hi");
  EXPECT_EQ(parts[1].id, 11);
  EXPECT_EQ(parts[2].text, " ");
  EXPECT_EQ(parts[3].id, 10);
  EXPECT_EQ(parts[4].id, 12);
  EXPECT_EQ(parts[5].text, "end");  // [x] swallows the spaces on its right
  auto plain = s.split("hi<a>[x]", false);
  ASSERT_EQ(plain.size(), 2u);  // non-special added tokens always count
  EXPECT_EQ(plain[0].text, "hi<a>");
  EXPECT_EQ(plain[1].id, 12);
}

// A small but complete tokenizer.json: the 256 bytes, two merges, one special token.
json small_tokenizer_json() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[gpt2_unicode_from_bytes(std::string(1, static_cast<char>(b)))] = b;
  vocab["he"] = 256;
  vocab["hel"] = 257;
  vocab["<|end|>"] = 258;
  return {{"version", "1.0"},
          {"added_tokens", {{{"id", 258}, {"content", "<|end|>"}, {"special", true}}}},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"h e", json::array({"he", "l"})}}}}};
}

std::string write_json(const std::string& dir, const std::string& name, const std::string& text) {
  std::string path = dir + "/" + name;
  test::write_file(path, text);
  return path;
}

TEST(TokenizerJson, LoadsASmallByteLevelBpe) {
  std::string dir = test::temp_dir("tokjson");
  auto tok = load_tokenizer(write_json(dir, "tokenizer.json", small_tokenizer_json().dump()));
  EXPECT_EQ(tok->encode("help<|end|>", true), (std::vector<int32_t>{257, 'p', 258}));
  EXPECT_EQ(tok->encode("help<|end|>", false).size(), 2u + 7u);
  EXPECT_EQ(tok->decode({257, 'p', 258}), "help<|end|>");
  EXPECT_EQ(tok->decode({257, 'p', 258}, true), "help");
  EXPECT_EQ(tok->vocab_size(), 259);
  EXPECT_EQ(tok->token_text(' '), "\xC4\xA0");
  EXPECT_THROW(tok->decode({259}), InputError);
}

TEST(TokenizerJson, MalformedFilesNameTheFileAndKey) {
  std::string dir = test::temp_dir("badjson");
  auto expect_error = [&](const std::string& name, const std::string& text, const std::string& what) {
    std::string path = write_json(dir, name, text);
    std::string message = test::input_error([&] { load_tokenizer(path); });
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(what), std::string::npos) << message;
  };
  expect_error("truncated.json", small_tokenizer_json().dump().substr(0, 100), "not valid JSON");
  json j = small_tokenizer_json();
  j["model"]["type"] = "WordPiece";
  expect_error("wordpiece.json", j.dump(), "model.type: model \"WordPiece\" is not supported");
  j = small_tokenizer_json();
  j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Metaspace"}}}}};
  expect_error("metaspace.json", j.dump(), "pre_tokenizer.pretokenizers[0].type: pre-tokenizer \"Metaspace\"");
  j = small_tokenizer_json();
  j["normalizer"] = {{"type", "NFC"}};
  expect_error("normalizer.json", j.dump(), "normalizer");
  j = small_tokenizer_json();
  j["model"]["merges"][0] = "h e l";
  expect_error("merges.json", j.dump(), "model.merges[0]");
  j = small_tokenizer_json();
  j["model"]["vocab"]["x"] = -3;
  expect_error("vocab.json", j.dump(), "model.vocab");
  j = small_tokenizer_json();
  j["model"].erase("merges");
  expect_error("nomerges.json", j.dump(), "model.merges: missing");
  j = small_tokenizer_json();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "("}}}, {"behavior", "Isolated"}};
  expect_error("regex.json", j.dump(), "pre_tokenizer.pattern: regex does not compile");
}

// --- SmolLM2 against Hugging Face ------------------------------------------------------


class SmolLM2Tokenizer : public ::testing::Test {
 protected:
  void SetUp() override {
    gguf_path_ = test::models_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!std::filesystem::exists(gguf_path_)) {
      GTEST_SKIP() << gguf_path_ << " is absent; launch/setup.sh downloads it";
    }
    data_ = read_gguf_tokenizer(GgufFile::open(gguf_path_));
  }

  void expect_reference_ids(const Tokenizer& tok) {
    auto cases = test::tokenizer_reference_cases("smollm2_tokenizer_reference.json");
    ASSERT_GE(cases.size(), 300u);
    for (const auto& c : cases) {
      ASSERT_EQ(tok.encode(c.text, c.parse_special), c.ids) << c.label;
      ASSERT_EQ(tok.decode(c.ids), c.text) << c.label;
    }
  }

  std::string gguf_path_;
  GgufTokenizerData data_;
};

TEST_F(SmolLM2Tokenizer, MatchesHuggingFace) {
  auto tok = tokenizer_from_gguf(data_);
  EXPECT_EQ(tok->vocab_size(), 49152);
  EXPECT_EQ(tok->eos_id(), data_.eos_id);
  EXPECT_EQ(tok->bos_id(), data_.bos_id);
  expect_reference_ids(*tok);
}

TEST_F(SmolLM2Tokenizer, WrittenTokenizerJsonMatchesHuggingFace) {
  std::string dir = test::temp_dir("smollm2tok");
  EXPECT_EQ(write_tokenizer_from_gguf(data_, dir), dir + "/tokenizer.json");
  EXPECT_TRUE(std::filesystem::exists(dir + "/tokenizer_config.json"));
  auto tok = load_tokenizer(dir);
  EXPECT_EQ(tok->eos_id(), data_.eos_id);
  EXPECT_EQ(tok->bos_id(), data_.bos_id);
  expect_reference_ids(*tok);
}

TEST_F(SmolLM2Tokenizer, RoundTripsEveryStoryAndAbstract) {
  auto tok = tokenizer_from_gguf(data_);
  for (const auto& list : {test::tinystories_stories(), test::arxiv_abstracts()}) {
    for (const std::string& text : list) ASSERT_EQ(tok->decode(tok->encode(text)), text);
  }
}

TEST_F(SmolLM2Tokenizer, UnknownPreTokenizerNamesFileAndName) {
  data_.pre = "qwen2";
  std::string message = test::input_error([&] { tokenizer_from_gguf(data_); });
  EXPECT_NE(message.find(gguf_path_), std::string::npos) << message;
  EXPECT_NE(message.find("qwen2"), std::string::npos) << message;
}

}  // namespace
}  // namespace xcomp
