#include "trainer/chat_format.h"

#include "model/input_error.h"

namespace xcomp {

namespace {
bool has_special_token(const Tokenizer& tokenizer, const std::string& text) {
  const std::vector<int32_t> ids = tokenizer.encode(text, /*parse_special=*/true);
  return ids.size() == 1 && tokenizer.token_text(ids[0]) == text;
}
}  // namespace

bool has_chat_format(const Tokenizer& tokenizer) {
  return (has_special_token(tokenizer, "<|im_start|>") && has_special_token(tokenizer, "<|im_end|>")) ||
         (has_special_token(tokenizer, "<|start_header_id|>") && has_special_token(tokenizer, "<|eot_id|>"));
}

std::string format_chat_prompt(const Tokenizer& tokenizer, const std::string& system, const std::string& user) {
  if (has_special_token(tokenizer, "<|im_start|>") && has_special_token(tokenizer, "<|im_end|>")) {
    std::string prompt;
    if (!system.empty()) prompt += "<|im_start|>system\n" + system + "<|im_end|>\n";
    return prompt + "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n";
  }
  if (has_special_token(tokenizer, "<|start_header_id|>") && has_special_token(tokenizer, "<|eot_id|>")) {
    std::string prompt = "<|begin_of_text|>";
    if (!system.empty()) prompt += "<|start_header_id|>system<|end_header_id|>\n\n" + system + "<|eot_id|>";
    return prompt + "<|start_header_id|>user<|end_header_id|>\n\n" + user +
           "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
  }
  throw_input_error("--chat: the tokenizer (", tokenizer.name(),
                    ") has no known chat format (ChatML <|im_start|> or LLaMA-3 <|start_header_id|>)");
}

}  // namespace xcomp
