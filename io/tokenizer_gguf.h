// Tokenizers carried by GGUF files: built directly, or written out as the files a
// Hugging Face directory holds (tokenizer.json for byte-level BPE, tokenizer.bin in
// llama2.c's format for scored SentencePiece-style vocabularies) so load_tokenizer reads
// a converted model directory.
#pragma once

#include <memory>
#include <string>

#include "io/gguf_tokenizer_data.h"
#include "io/tokenizer.h"

namespace xcomp {

std::unique_ptr<Tokenizer> tokenizer_from_gguf(const GgufTokenizerData& data);

// Writes the tokenizer file(s) into out_dir; returns the path written.
std::string write_tokenizer_from_gguf(const GgufTokenizerData& data, const std::string& out_dir);

}  // namespace xcomp
