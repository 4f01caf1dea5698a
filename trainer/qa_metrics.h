// Scores of a predicted answer against reference answers, as the official SQuAD
// evaluation scripts compute them, plus the strict variant the 500xCompressor paper's
// tables use.
//
// SQuAD (v1.1 and v2.0 scripts): both texts are normalised -- lowercased, ASCII
// punctuation removed, the articles "a", "an", "the" removed as whole words, whitespace
// folded -- then exact match is string equality and F1 is the harmonic mean of token
// precision and recall over the normalised words (bag of words, counted with
// multiplicity). The score is the maximum over the references. SQuAD v2.0 unanswerable
// questions have no reference (or only references that normalise to nothing): the
// prediction then scores 1 exactly when it normalises to nothing, else 0.
//
// Strict: no normalisation at all (case and punctuation count); only leading and
// trailing whitespace is ignored, and F1 runs over whitespace-separated tokens.
//
// Lowercasing and word boundaries follow ASCII; bytes of non-ASCII UTF-8 characters are
// kept as they are and count as word characters (Python's script lowercases those too,
// which only matters for answers differing in the case of non-ASCII letters).
#pragma once

#include <string>
#include <vector>

namespace xcomp {

struct AnswerScore {
  double exact_match = 0;  // 0 or 1
  double f1 = 0;           // in [0, 1]
};

// The official normalize_answer.
std::string normalize_squad_answer(const std::string& text);

AnswerScore squad_answer_score(const std::string& prediction, const std::vector<std::string>& references);
AnswerScore strict_answer_score(const std::string& prediction, const std::vector<std::string>& references);

}  // namespace xcomp
