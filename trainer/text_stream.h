// Prints generated text as it is produced. Decoding token by token is not enough: a
// character can span several tokens (byte fallback, byte-level BPE), and SentencePiece
// drops a leading space only at the start. So the whole output is re-decoded after
// each token and only the stable new suffix is printed.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "io/tokenizer.h"

namespace xcomp {

class TextStream {
 public:
  TextStream(const Tokenizer& tokenizer, std::ostream& out) : tokenizer_(tokenizer), out_(out) {}
  void push(int32_t id);
  // Prints whatever is still held back.
  void finish();
  const std::vector<int32_t>& ids() const { return ids_; }

 private:
  void emit(bool final);
  const Tokenizer& tokenizer_;
  std::ostream& out_;
  std::vector<int32_t> ids_;
  std::string printed_;
};

}  // namespace xcomp
