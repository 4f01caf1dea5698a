// The base model's baseline prompts in its chat format (`xcomp eval --baseline-prompt
// chat`). An instruct model such as SmolLM2-135M-Instruct given "[BOS] context Question:
// q Answer:" as plain text does not answer (it writes "1. 2. 3."), so the full-context
// baseline would measure the prompt, not what the context is worth; asked in its own
// turn format, it answers. The compressed system is not affected: it decodes as it
// was trained.
#pragma once

#include <cstdint>
#include <vector>

#include "io/tokenizer.h"
#include "trainer/chat_format.h"  // has_chat_format: whether these prompts can be made

namespace xcomp {

// A user turn asking for a short answer to `question`, after `context` when it is given
// (null: the no-context baseline); ends where the assistant's answer starts.
std::vector<int32_t> chat_qa_prompt(const Tokenizer& tokenizer, const std::vector<int32_t>* context,
                                    const std::vector<int32_t>& question);

// A user turn asking the model to repeat `text` exactly (the full-text regeneration
// baseline).
std::vector<int32_t> chat_repeat_prompt(const Tokenizer& tokenizer, const std::vector<int32_t>& text);

}  // namespace xcomp
