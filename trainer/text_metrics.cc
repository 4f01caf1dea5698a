#include "trainer/text_metrics.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace xcomp {

namespace {

using NgramCounts = std::map<std::vector<std::string>, int64_t>;

NgramCounts ngram_counts(const std::vector<std::string>& words, size_t n) {
  NgramCounts counts;
  for (size_t i = 0; i + n <= words.size(); ++i)
    ++counts[std::vector<std::string>(words.begin() + i, words.begin() + i + n)];
  return counts;
}

// Matches of prediction n-grams, each clipped to its count in the reference.
int64_t clipped_matches(const NgramCounts& prediction, const NgramCounts& reference) {
  int64_t matches = 0;
  for (const auto& [gram, count] : prediction) {
    auto it = reference.find(gram);
    if (it != reference.end()) matches += std::min(count, it->second);
  }
  return matches;
}

double f_measure(int64_t overlap, int64_t predicted, int64_t reference) {
  if (overlap == 0 || predicted == 0 || reference == 0) return 0.0;
  const double precision = static_cast<double>(overlap) / predicted;
  const double recall = static_cast<double>(overlap) / reference;
  return 2 * precision * recall / (precision + recall);
}

double rouge_n(const std::vector<std::string>& prediction, const std::vector<std::string>& reference, size_t n) {
  const NgramCounts p = ngram_counts(prediction, n), r = ngram_counts(reference, n);
  int64_t predicted = 0, referenced = 0;
  for (const auto& kv : p) predicted += kv.second;
  for (const auto& kv : r) referenced += kv.second;
  return f_measure(clipped_matches(p, r), predicted, referenced);
}

int64_t longest_common_subsequence(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<int64_t> previous(b.size() + 1, 0), current(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j)
      current[j] = a[i - 1] == b[j - 1] ? previous[j - 1] + 1 : std::max(previous[j], current[j - 1]);
    std::swap(previous, current);
  }
  return previous[b.size()];
}

}  // namespace

std::vector<std::string> rouge_words(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  for (unsigned char c : text) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (alnum) {
      word.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
    } else if (!word.empty()) {
      words.push_back(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

RougeScores rouge_scores(const std::vector<std::string>& prediction, const std::vector<std::string>& reference) {
  RougeScores s;
  s.rouge1 = rouge_n(prediction, reference, 1);
  s.rouge2 = rouge_n(prediction, reference, 2);
  const int64_t lcs = longest_common_subsequence(prediction, reference);
  s.rouge_l = f_measure(lcs, static_cast<int64_t>(prediction.size()), static_cast<int64_t>(reference.size()));
  return s;
}

void CorpusBleu::add(const std::vector<std::string>& prediction, const std::vector<std::string>& reference) {
  for (size_t n = 1; n <= 4; ++n) {
    const NgramCounts p = ngram_counts(prediction, n);
    matches_[n - 1] += clipped_matches(p, ngram_counts(reference, n));
    for (const auto& kv : p) predicted_[n - 1] += kv.second;
  }
  prediction_length_ += static_cast<int64_t>(prediction.size());
  reference_length_ += static_cast<int64_t>(reference.size());
}

double CorpusBleu::score() const {
  double log_sum = 0;
  for (int n = 0; n < 4; ++n) {
    if (matches_[n] == 0 || predicted_[n] == 0) return 0.0;
    log_sum += std::log(static_cast<double>(matches_[n]) / predicted_[n]);
  }
  const double brevity = prediction_length_ >= reference_length_
                             ? 1.0
                             : std::exp(1.0 - static_cast<double>(reference_length_) / prediction_length_);
  return brevity * std::exp(log_sum / 4);
}

}  // namespace xcomp
