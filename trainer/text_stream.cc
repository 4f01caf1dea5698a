#include "trainer/text_stream.h"

namespace xcomp {

namespace {
// Length of the longest prefix of s that does not end inside a UTF-8 sequence or in a
// replacement character (a byte sequence still waiting for its continuation).
size_t stable_prefix(const std::string& s) {
  size_t n = s.size();
  static const std::string kReplacement = "\xEF\xBF\xBD";
  while (n >= 3 && s.compare(n - 3, 3, kReplacement) == 0) n -= 3;
  size_t i = n;
  int continuation = 0;
  while (i > 0 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80 && continuation < 3) {
    --i;
    ++continuation;
  }
  if (i == 0) return n;
  const unsigned char lead = static_cast<unsigned char>(s[i - 1]);
  int expected = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
  return (lead >= 0xC0 && continuation < expected) ? i - 1 : n;
}
}  // namespace

void TextStream::push(int32_t id) {
  ids_.push_back(id);
  emit(false);
}

void TextStream::finish() { emit(true); }

void TextStream::emit(bool final) {
  const std::string text = tokenizer_.decode(ids_, /*skip_special=*/true);
  const size_t end = final ? text.size() : stable_prefix(text);
  // Print only when what was printed is still a prefix of the text (it always is unless a
  // decoder rewrote earlier text; then the rest waits for the end).
  if (end > printed_.size() && text.compare(0, printed_.size(), printed_) == 0) {
    out_ << text.substr(printed_.size(), end - printed_.size());
    out_.flush();
    printed_ = text.substr(0, end);
  } else if (final && text.compare(0, printed_.size(), printed_) != 0) {
    out_ << "\n" << text;  // cannot happen with the tokenizers we have; never lose text
  }
  if (final) out_ << "\n";
  out_.flush();
}

}  // namespace xcomp
