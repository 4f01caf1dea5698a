#include "io/added_tokens.h"

#include <algorithm>

namespace xcomp {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

}  // namespace

AddedTokenSplitter::AddedTokenSplitter(const std::vector<AddedToken>& tokens) {
  for (const AddedToken& t : tokens) {
    if (t.content.empty()) continue;  // an empty token would match everywhere
    tokens_.push_back(t);
  }
  for (size_t i = 0; i < tokens_.size(); ++i) {
    by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(static_cast<int>(i));
  }
  for (auto& list : by_first_byte_) {
    std::stable_sort(list.begin(), list.end(), [&](int a, int b) {
      return tokens_[a].content.size() > tokens_[b].content.size();
    });
  }
}

int AddedTokenSplitter::longest_match(std::string_view text, size_t pos, bool include_special) const {
  for (int i : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
    const AddedToken& t = tokens_[i];
    if (t.special && !include_special) continue;
    if (text.compare(pos, t.content.size(), t.content) == 0) return i;
  }
  return -1;
}

std::vector<AddedTokenSplitter::Segment> AddedTokenSplitter::split(std::string_view text,
                                                                   bool include_special) const {
  std::vector<Segment> out;
  size_t plain_begin = 0;
  for (size_t pos = 0; pos < text.size();) {
    int match = tokens_.empty() ? -1 : longest_match(text, pos, include_special);
    if (match < 0) {
      ++pos;
      continue;
    }
    const AddedToken& t = tokens_[match];
    size_t plain_end = pos, after = pos + t.content.size();
    if (t.lstrip) {
      while (plain_end > plain_begin && is_space(text[plain_end - 1])) --plain_end;
    }
    if (t.rstrip) {
      while (after < text.size() && is_space(text[after])) ++after;
    }
    if (plain_end > plain_begin) out.push_back({text.substr(plain_begin, plain_end - plain_begin), -1});
    out.push_back({text.substr(pos, t.content.size()), t.id});
    plain_begin = pos = after;
  }
  if (plain_begin < text.size()) out.push_back({text.substr(plain_begin), -1});
  return out;
}

}  // namespace xcomp
