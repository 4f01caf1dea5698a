// The chat-format baseline prompts of `xcomp eval --baseline-prompt chat`, with the
// LLaMA-3 tokenizer (a chat format and a byte-level BPE that round-trips text): one user
// turn holding the context (or not), the question and the instruction, ending where the
// assistant's answer starts.
#include "trainer/eval_chat_prompts.h"

#include <gtest/gtest.h>

#include "io/tokenizer.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

class EvalChatPrompts : public ::testing::Test {
 protected:
  static const Tokenizer& tokenizer() {
    static const std::unique_ptr<Tokenizer> tok = load_tokenizer(test::fixture("llama3/tokenizer.model"));
    return *tok;
  }
  static bool ends_with(const std::string& s, const std::string& end) {
    return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
  }
};

TEST_F(EvalChatPrompts, QaPromptPutsContextAndQuestionInOneUserTurn) {
  const Tokenizer& tok = tokenizer();
  ASSERT_TRUE(has_chat_format(tok));
  const std::vector<int32_t> context = tok.encode("The ball was red. Tim found it under the bed.");
  const std::vector<int32_t> question = tok.encode("Who found the ball?");
  const std::string with = tok.decode(chat_qa_prompt(tok, &context, question));
  EXPECT_EQ(with.find("<|start_header_id|>user<|end_header_id|>\n\nThe ball was red. Tim found it under the bed."),
            with.find("<|start_header_id|>user"))
      << with;
  EXPECT_NE(with.find("Question: Who found the ball?<|eot_id|>"), std::string::npos) << with;
  EXPECT_TRUE(ends_with(with, "<|start_header_id|>assistant<|end_header_id|>\n\n")) << with;

  const std::string without = tok.decode(chat_qa_prompt(tok, nullptr, question));
  EXPECT_EQ(without.find("Tim"), std::string::npos) << without;
  EXPECT_NE(without.find("Question: Who found the ball?"), std::string::npos) << without;
  EXPECT_TRUE(ends_with(without, "<|start_header_id|>assistant<|end_header_id|>\n\n")) << without;
}

TEST_F(EvalChatPrompts, RepeatPromptCarriesTheText) {
  const Tokenizer& tok = tokenizer();
  const std::string prompt = tok.decode(chat_repeat_prompt(tok, tok.encode("Once upon a time, a cat sat.")));
  EXPECT_NE(prompt.find("Repeat the following text exactly"), std::string::npos) << prompt;
  EXPECT_NE(prompt.find("\n\nOnce upon a time, a cat sat.<|eot_id|>"), std::string::npos) << prompt;
}

}  // namespace
}  // namespace xcomp
