// Added tokens: whole strings such as "<|im_start|>" that bypass pre-tokenization and
// BPE. As in Hugging Face tokenizers, the text is first cut around them (leftmost,
// longest match first) and only the text between them is tokenized normally.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace xcomp {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = true;  // special tokens are matched only when asked (parse_special)
  bool lstrip = false;  // also swallow whitespace on its left
  bool rstrip = false;  // ... and on its right
};

class AddedTokenSplitter {
 public:
  AddedTokenSplitter() = default;
  explicit AddedTokenSplitter(const std::vector<AddedToken>& tokens);

  struct Segment {
    std::string_view text;  // plain text when id < 0
    int32_t id = -1;
  };
  // Cuts text around added tokens; special ones count only with include_special.
  // Non-special added tokens always count, as in Hugging Face.
  std::vector<Segment> split(std::string_view text, bool include_special) const;

 private:
  // Index into tokens_ of the longest token matching at text[pos], or -1.
  int longest_match(std::string_view text, size_t pos, bool include_special) const;

  std::vector<AddedToken> tokens_;
  // For each first byte, the tokens starting with it, longest first.
  std::vector<std::vector<int>> by_first_byte_ = std::vector<std::vector<int>>(256);
};

}  // namespace xcomp
