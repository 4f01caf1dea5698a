// SentencePiece .model files through libsentencepiece.
#pragma once

#include <memory>
#include <string>

#include "io/tokenizer.h"

namespace xcomp {

// Throws InputError naming the path when the file is missing or not a SentencePiece model.
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path);

}  // namespace xcomp
