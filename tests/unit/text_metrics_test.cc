// ROUGE and BLEU on cases counted by hand.
#include "trainer/text_metrics.h"

#include <gtest/gtest.h>

#include <cmath>

namespace xcomp {
namespace {

std::vector<std::string> words(const std::string& text) { return rouge_words(text); }

TEST(RougeWords, LowercasesAndSplitsOnNonAlphanumerics) {
  EXPECT_EQ(rouge_words("The cat's hat, 2 times!"), (std::vector<std::string>{"the", "cat", "s", "hat", "2", "times"}));
  EXPECT_TRUE(rouge_words(" ,.; ").empty());
}

TEST(Rouge, PartialRegenerationCountedByHand) {
  const RougeScores s = rouge_scores(words("the cat sat"), words("the cat sat on the mat"));
  EXPECT_NEAR(s.rouge1, 2.0 / 3.0, 1e-12);   // P 3/3, R 3/6
  EXPECT_NEAR(s.rouge2, 0.8 / 1.4, 1e-12);   // P 2/2, R 2/5
  EXPECT_NEAR(s.rouge_l, 2.0 / 3.0, 1e-12);  // LCS 3
}

TEST(Rouge, LongestCommonSubsequenceSeesOrder) {
  const RougeScores s = rouge_scores(words("a b c d"), words("b a d c"));
  EXPECT_EQ(s.rouge1, 1.0);
  EXPECT_NEAR(s.rouge_l, 0.5, 1e-12);  // LCS 2 of 4 and 4
  EXPECT_EQ(s.rouge2, 0.0);            // no bigram in common
}

TEST(Rouge, IdenticalAndEmpty) {
  const RougeScores same = rouge_scores(words("once upon a time"), words("Once upon a time."));
  EXPECT_EQ(same.rouge1, 1.0);
  EXPECT_EQ(same.rouge2, 1.0);
  EXPECT_EQ(same.rouge_l, 1.0);
  const RougeScores empty = rouge_scores({}, words("something"));
  EXPECT_EQ(empty.rouge1, 0.0);
  EXPECT_EQ(empty.rouge_l, 0.0);
}

TEST(CorpusBleu, IdenticalTextScoresOne) {
  CorpusBleu bleu;
  bleu.add(words("one day lily found a red ball"), words("one day lily found a red ball"));
  EXPECT_NEAR(bleu.score(), 1.0, 1e-12);
}

TEST(CorpusBleu, ShortPredictionPaysTheBrevityPenalty) {
  CorpusBleu bleu;
  bleu.add(words("the cat sat on"), words("the cat sat on the mat"));  // every precision 1
  EXPECT_NEAR(bleu.score(), std::exp(1.0 - 6.0 / 4.0), 1e-12);
}

TEST(CorpusBleu, MatchesAreClippedAndAZeroPrecisionGivesZero) {
  CorpusBleu bleu;
  bleu.add(words("the the the the"), words("the cat"));  // p1 = 1/4, p2 = 0
  EXPECT_EQ(bleu.score(), 0.0);
}

TEST(CorpusBleu, CountsAreSummedOverTheCorpusBeforeDividing) {
  CorpusBleu bleu;
  bleu.add(words("a b c d"), words("a b c d"));
  bleu.add(words("x y"), words("x z"));  // alone it has no 4-gram at all
  // p1 = 5/6, p2 = 3/4, p3 = 2/2, p4 = 1/1; lengths 6 and 6.
  EXPECT_NEAR(bleu.score(), std::pow(5.0 / 6.0 * 3.0 / 4.0, 0.25), 1e-12);
}

}  // namespace
}  // namespace xcomp
