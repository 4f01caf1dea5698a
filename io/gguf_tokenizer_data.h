// The tokenizer a GGUF file carries, as raw metadata (tokenizer.ggml.*). io/gguf.cc
// reads it; io/tokenizer_gguf.cc turns it into a Tokenizer or tokenizer files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xcomp {

struct GgufTokenizerData {
  std::string model;                // tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (scored pieces)
  std::string pre;                  // tokenizer.ggml.pre: pre-tokenizer name ("smollm", "llama-bpe", ...); may be empty
  std::vector<std::string> tokens;  // tokenizer.ggml.tokens
  std::vector<float> scores;        // tokenizer.ggml.scores (may be empty)
  std::vector<int32_t> token_types; // tokenizer.ggml.token_type: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
  std::vector<std::string> merges;  // tokenizer.ggml.merges: "left right", highest priority first
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  int32_t pad_id = -1;
  bool add_bos = false;             // tokenizer.ggml.add_bos_token
  std::string chat_template;        // tokenizer.chat_template (may be empty)
  std::string source;               // the GGUF path, for error messages
};

}  // namespace xcomp
