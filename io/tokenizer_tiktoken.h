// tiktoken rank files (LLaMA-3's tokenizer.model): one "base64(token bytes) rank" line
// per token, the rank being both the token id and its merge priority. Read into the
// byte-level BPE core with LLaMA-3's pre-tokenizer and special tokens, so encoding gives
// exactly tiktoken's ids.
#pragma once

#include <memory>
#include <string>

#include "io/tokenizer.h"

namespace xcomp {

// Whether the file's first line has the form "<base64> <decimal rank>". Such a file may
// be named tokenizer.model, like a SentencePiece protobuf, so the content decides.
bool looks_like_tiktoken_file(const std::string& path);

// Reads a tiktoken rank file. Ranks must be 0..n-1, each once, and include all 256
// single bytes. Special tokens come from the added_tokens_decoder of a
// tokenizer_config.json beside the file, or else are LLaMA-3's standard 256 (ids n..n+255:
// <|begin_of_text|>, <|end_of_text|>, reserved 0-3, <|start_header_id|>,
// <|end_header_id|>, reserved 4, <|eot_id|>, reserved 5-250). BOS/EOS are that config's
// bos_token/eos_token, else <|begin_of_text|>/<|end_of_text|>; <|eot_id|> ends a turn.
// InputError naming the file and line for anything malformed.
std::unique_ptr<Tokenizer> load_tiktoken_tokenizer(const std::string& path);

}  // namespace xcomp
