#include "io/gpt2_byte_unicode.h"

#include <array>
#include <cstdint>
#include <unordered_map>

namespace xcomp {
namespace {

// The printable bytes map to themselves; the other 68 take code points 256, 257, ... in
// byte order (GPT-2's bytes_to_unicode()).
const std::array<uint32_t, 256>& code_points() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    uint32_t extra = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[b] = printable ? b : extra++;
    }
    return t;
  }();
  return table;
}

const std::unordered_map<uint32_t, uint8_t>& bytes_by_code_point() {
  static const std::unordered_map<uint32_t, uint8_t> inverse = [] {
    std::unordered_map<uint32_t, uint8_t> m;
    for (uint32_t b = 0; b < 256; ++b) m.emplace(code_points()[b], static_cast<uint8_t>(b));
    return m;
  }();
  return inverse;
}

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else {  // every mapped code point is below 0x800
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

std::string gpt2_unicode_from_bytes(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) append_utf8(code_points()[b], out);
  return out;
}

std::optional<std::string> bytes_from_gpt2_unicode(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    auto c = static_cast<unsigned char>(text[i]);
    uint32_t cp;
    if (c < 0x80) {
      cp = c;
      i += 1;
    } else if ((c & 0xE0) == 0xC0 && i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80) {
      cp = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3Fu);
      i += 2;
    } else {
      return std::nullopt;  // longer sequences are never in the mapping
    }
    auto it = bytes_by_code_point().find(cp);
    if (it == bytes_by_code_point().end()) return std::nullopt;
    out += static_cast<char>(it->second);
  }
  return out;
}

}  // namespace xcomp
