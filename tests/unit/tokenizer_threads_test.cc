// Tokenizers are shared between threads (the data preparation and the benchmark split
// documents across threads): encoding from 4 threads at once, starting from a cold BPE
// cache, gives the same ids as encoding serially.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "io/gguf.h"
#include "io/gguf_llama.h"
#include "io/tokenizer.h"
#include "io/tokenizer_gguf.h"
#include "tests/test_support.h"
#include "tests/unit/tokenizer_texts.h"

namespace xcomp {
namespace {

std::vector<std::string> texts() {
  std::vector<std::string> all = test::tinystories_stories();
  all.resize(std::min<size_t>(all.size(), 600));
  for (const std::string& a : test::arxiv_abstracts()) all.push_back(a);
  all.push_back("<|eot_id|> <|im_end|> <s> special-looking text");
  return all;
}

// Each thread encodes every text, starting at a different offset so the threads hit the
// same pieces at different times.
void expect_concurrent_equals_serial(const Tokenizer& serial, const Tokenizer& shared) {
  const std::vector<std::string> all = texts();
  std::vector<std::vector<int32_t>> expected;
  for (const std::string& t : all) expected.push_back(serial.encode(t, /*parse_special=*/true));

  constexpr int kThreads = 4;
  std::vector<std::vector<std::vector<int32_t>>> got(kThreads, std::vector<std::vector<int32_t>>(all.size()));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (size_t k = 0; k < all.size(); ++k) {
        size_t i = (k + t * all.size() / kThreads) % all.size();
        got[t][i] = shared.encode(all[i], /*parse_special=*/true);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(got[t][i], expected[i]) << shared.name() << " thread " << t << " text " << i;
  }
}

TEST(TokenizerThreads, ConcurrentEncodingEqualsSerial) {
  for (const char* relative : {"stories260K/tok512.model", "stories260K/tok512.bin", "llama3/tokenizer.model"}) {
    std::string path = test::fixture(relative);
    expect_concurrent_equals_serial(*load_tokenizer(path), *load_tokenizer(path));
  }
}

TEST(TokenizerThreads, ConcurrentEncodingEqualsSerialForSmolLM2) {
  std::string gguf = test::models_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(gguf)) GTEST_SKIP() << gguf << " is absent; launch/setup.sh downloads it";
  GgufTokenizerData data = read_gguf_tokenizer(GgufFile::open(gguf));
  expect_concurrent_equals_serial(*tokenizer_from_gguf(data), *tokenizer_from_gguf(data));
}

}  // namespace
}  // namespace xcomp
