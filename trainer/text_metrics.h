// Regeneration quality: how close a regenerated text is to the original, over word
// tokens. ROUGE-1/2/L F-measure per text (as Google's rouge_score computes them, without
// stemming), corpus BLEU-4 with the brevity penalty (Papineni et al.; one reference per
// text, no smoothing, so a corpus without a single matching 4-gram scores 0).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xcomp {

// rouge_score's default tokenisation: lowercase (ASCII), every character other than an
// ASCII letter or digit separates words. Non-ASCII bytes separate words too.
std::vector<std::string> rouge_words(const std::string& text);

struct RougeScores {
  double rouge1 = 0, rouge2 = 0, rouge_l = 0;  // F-measures in [0, 1]
};
RougeScores rouge_scores(const std::vector<std::string>& prediction, const std::vector<std::string>& reference);

// Accumulates clipped n-gram matches (n = 1..4) and lengths over a corpus.
class CorpusBleu {
 public:
  void add(const std::vector<std::string>& prediction, const std::vector<std::string>& reference);
  // BP * exp(mean over n of log(matches_n / predicted_n)); 0 when any precision is 0.
  double score() const;

 private:
  int64_t matches_[4] = {0, 0, 0, 0};
  int64_t predicted_[4] = {0, 0, 0, 0};
  int64_t prediction_length_ = 0, reference_length_ = 0;
};

}  // namespace xcomp
