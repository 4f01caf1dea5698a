#include "trainer/qa_metrics.h"

#include <algorithm>
#include <cstring>
#include <map>

namespace xcomp {

namespace {

bool is_ascii_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Python's string.punctuation.
bool is_ascii_punctuation(unsigned char c) {
  return c < 0x80 && std::strchr("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", c) && c != 0;
}

// A character of \w in the article pattern: ASCII letters, digits and '_', and (as an
// approximation of Unicode \w) every byte of a non-ASCII character.
bool is_word_byte(unsigned char c) {
  return c >= 0x80 || c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

std::vector<std::string> split_whitespace(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  for (unsigned char c : text) {
    if (is_ascii_space(c)) {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    } else {
      word.push_back(static_cast<char>(c));
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

// re.sub(r'\b(a|an|the)\b', ' ', text): every maximal run of word characters that is
// exactly an article becomes a space.
std::string remove_articles(const std::string& text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (!is_word_byte(static_cast<unsigned char>(text[i]))) {
      out.push_back(text[i++]);
      continue;
    }
    size_t end = i;
    while (end < text.size() && is_word_byte(static_cast<unsigned char>(text[end]))) ++end;
    const std::string word = text.substr(i, end - i);
    out += word == "a" || word == "an" || word == "the" ? std::string(" ") : word;
    i = end;
  }
  return out;
}

// Token F1 as the official script's compute_f1: two empty token lists agree (score 1),
// one empty list scores 0.
double token_f1(const std::vector<std::string>& prediction, const std::vector<std::string>& reference) {
  if (prediction.empty() || reference.empty()) return prediction.empty() && reference.empty() ? 1.0 : 0.0;
  std::map<std::string, int> counts;
  for (const auto& w : reference) ++counts[w];
  int common = 0;
  for (const auto& w : prediction) {
    auto it = counts.find(w);
    if (it != counts.end() && it->second > 0) {
      --it->second;
      ++common;
    }
  }
  if (common == 0) return 0.0;
  const double precision = static_cast<double>(common) / prediction.size();
  const double recall = static_cast<double>(common) / reference.size();
  return 2 * precision * recall / (precision + recall);
}

std::string trim(const std::string& text) {
  size_t begin = 0, end = text.size();
  while (begin < end && is_ascii_space(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && is_ascii_space(static_cast<unsigned char>(text[end - 1]))) --end;
  return text.substr(begin, end - begin);
}

// The maximum over references of exact match and F1, after `prepare` turns each text
// into the string compared for exact match; F1 splits that string on whitespace. With
// no reference left (unanswerable), the only reference is the empty answer.
template <typename Prepare>
AnswerScore best_over_references(const std::string& prediction, const std::vector<std::string>& references,
                                 Prepare prepare) {
  std::vector<std::string> kept;
  for (const auto& r : references) {
    std::string p = prepare(r);
    if (!p.empty()) kept.push_back(std::move(p));
  }
  if (kept.empty()) kept.emplace_back();
  const std::string pred = prepare(prediction);
  const std::vector<std::string> pred_tokens = split_whitespace(pred);
  AnswerScore best;
  for (const auto& ref : kept) {
    best.exact_match = std::max(best.exact_match, pred == ref ? 1.0 : 0.0);
    best.f1 = std::max(best.f1, token_f1(pred_tokens, split_whitespace(ref)));
  }
  return best;
}

}  // namespace

std::string normalize_squad_answer(const std::string& text) {
  std::string lowered;
  for (unsigned char c : text) {
    if (is_ascii_punctuation(c)) continue;
    lowered.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
  }
  std::string out;
  for (const auto& w : split_whitespace(remove_articles(lowered))) {
    if (!out.empty()) out.push_back(' ');
    out += w;
  }
  return out;
}

AnswerScore squad_answer_score(const std::string& prediction, const std::vector<std::string>& references) {
  return best_over_references(prediction, references, normalize_squad_answer);
}

AnswerScore strict_answer_score(const std::string& prediction, const std::vector<std::string>& references) {
  return best_over_references(prediction, references, trim);
}

}  // namespace xcomp
