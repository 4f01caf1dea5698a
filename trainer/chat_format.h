// Wrapping a user message in a chat model's turn format. The formats are recognised from
// the tokenizer's special tokens: ChatML (<|im_start|>, SmolLM2 and Qwen) and LLaMA-3
// (<|start_header_id|>). Jinja chat templates themselves are not evaluated.
#pragma once

#include <string>

#include "io/tokenizer.h"

namespace xcomp {

// Whether the tokenizer carries one of those formats.
bool has_chat_format(const Tokenizer& tokenizer);

// Text to encode with parse_special = true; ends with the assistant turn's opening.
// An empty system message leaves the system turn out. InputError when the tokenizer has
// no known chat format.
std::string format_chat_prompt(const Tokenizer& tokenizer, const std::string& system, const std::string& user);

}  // namespace xcomp
