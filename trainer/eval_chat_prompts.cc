#include "trainer/eval_chat_prompts.h"

#include "trainer/chat_format.h"

namespace xcomp {

namespace {
std::vector<int32_t> user_turn(const Tokenizer& tokenizer, const std::string& user) {
  return tokenizer.encode(format_chat_prompt(tokenizer, "", user), /*parse_special=*/true);
}
}  // namespace

std::vector<int32_t> chat_qa_prompt(const Tokenizer& tokenizer, const std::vector<int32_t>* context,
                                    const std::vector<int32_t>& question) {
  const std::string q = tokenizer.decode(question, /*skip_special=*/true);
  if (context == nullptr) return user_turn(tokenizer, "Answer the question with a short phrase.\nQuestion: " + q);
  return user_turn(tokenizer, tokenizer.decode(*context, /*skip_special=*/true) +
                                  "\n\nAnswer the question with a short phrase from the text above.\nQuestion: " + q);
}

std::vector<int32_t> chat_repeat_prompt(const Tokenizer& tokenizer, const std::vector<int32_t>& text) {
  return user_turn(tokenizer, "Repeat the following text exactly, with nothing before or after it.\n\n" +
                                  tokenizer.decode(text, /*skip_special=*/true));
}

}  // namespace xcomp
