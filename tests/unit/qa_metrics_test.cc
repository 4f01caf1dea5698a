// Exact match and F1 against cases worked out by hand from the official SQuAD v1.1/v2.0
// evaluation scripts' rules, and the strict variant.
#include "trainer/qa_metrics.h"

#include <gtest/gtest.h>

namespace xcomp {
namespace {

TEST(SquadNormalisation, LowercasesStripsPunctuationArticlesAndFoldsWhitespace) {
  EXPECT_EQ(normalize_squad_answer("The Cat!"), "cat");
  EXPECT_EQ(normalize_squad_answer("  A  quick,\tbrown fox. "), "quick brown fox");
  EXPECT_EQ(normalize_squad_answer("An apple and THE pear"), "apple and pear");
  // Articles only as whole words: inside other words they stay.
  EXPECT_EQ(normalize_squad_answer("theatre anatomy"), "theatre anatomy");
  // Punctuation goes before articles are looked for, so it can join words.
  EXPECT_EQ(normalize_squad_answer("an-apple"), "anapple");
  EXPECT_EQ(normalize_squad_answer("the_end"), "theend");
  EXPECT_EQ(normalize_squad_answer("(the) end"), "end");
  EXPECT_EQ(normalize_squad_answer("the"), "");
  EXPECT_EQ(normalize_squad_answer("Café the crème"), "café crème");
}

TEST(SquadScore, ExactMatchAfterNormalisation) {
  const AnswerScore s = squad_answer_score("the Eiffel Tower.", {"Eiffel Tower"});
  EXPECT_EQ(s.exact_match, 1.0);
  EXPECT_EQ(s.f1, 1.0);
}

TEST(SquadScore, TokenF1IsHarmonicMeanOfPrecisionAndRecall) {
  // 2 common tokens; precision 2/3, recall 1.
  const AnswerScore s = squad_answer_score("Denver Broncos win", {"Denver Broncos"});
  EXPECT_EQ(s.exact_match, 0.0);
  EXPECT_NEAR(s.f1, 0.8, 1e-12);
}

TEST(SquadScore, CommonTokensCountWithMultiplicity) {
  // x: min(2, 1) = 1, y: min(1, 2) = 1 -> 2 common of 3 and 3.
  EXPECT_NEAR(squad_answer_score("x x y", {"x y y"}).f1, 2.0 / 3.0, 1e-12);
  EXPECT_EQ(squad_answer_score("x y z", {"u v w"}).f1, 0.0);
}

TEST(SquadScore, BestOverEveryReference) {
  const AnswerScore s = squad_answer_score("Broncos", {"Denver Broncos", "the Broncos", "Carolina"});
  EXPECT_EQ(s.exact_match, 1.0);
  EXPECT_EQ(s.f1, 1.0);
  // EM and F1 may come from different references.
  const AnswerScore t = squad_answer_score("in 1905 in Bern", {"1905", "in 1905 in Zurich"});
  EXPECT_EQ(t.exact_match, 0.0);
  EXPECT_NEAR(t.f1, 0.75, 1e-12);  // 3 of 4 tokens each way
}

TEST(SquadScore, EmptyPredictionScoresZeroOnAnAnswerableQuestion) {
  const AnswerScore s = squad_answer_score("", {"Paris"});
  EXPECT_EQ(s.exact_match, 0.0);
  EXPECT_EQ(s.f1, 0.0);
  EXPECT_EQ(squad_answer_score("the", {"Paris"}).f1, 0.0);
}

TEST(SquadScore, UnanswerableNeedsAnEmptyPrediction) {
  EXPECT_EQ(squad_answer_score("", {}).exact_match, 1.0);
  EXPECT_EQ(squad_answer_score("", {}).f1, 1.0);
  EXPECT_EQ(squad_answer_score("  . ", {}).f1, 1.0);  // normalises to nothing
  EXPECT_EQ(squad_answer_score("Paris", {}).exact_match, 0.0);
  EXPECT_EQ(squad_answer_score("Paris", {}).f1, 0.0);
  // References that normalise to nothing are dropped; none left means unanswerable.
  EXPECT_EQ(squad_answer_score("an", {"the", ""}).exact_match, 1.0);
  EXPECT_EQ(squad_answer_score("Paris", {"the"}).f1, 0.0);
}

TEST(StrictScore, CaseAndPunctuationCount) {
  EXPECT_EQ(strict_answer_score("eiffel tower", {"Eiffel Tower"}).exact_match, 0.0);
  EXPECT_EQ(strict_answer_score("eiffel tower", {"Eiffel Tower"}).f1, 0.0);
  const AnswerScore s = strict_answer_score("Eiffel Tower.", {"Eiffel Tower"});
  EXPECT_EQ(s.exact_match, 0.0);
  EXPECT_NEAR(s.f1, 0.5, 1e-12);  // "Eiffel" matches, "Tower." does not
  EXPECT_EQ(strict_answer_score("the Eiffel Tower", {"Eiffel Tower"}).exact_match, 0.0);
}

TEST(StrictScore, OnlyOuterWhitespaceIsIgnored) {
  EXPECT_EQ(strict_answer_score(" Eiffel Tower\n", {"Eiffel Tower"}).exact_match, 1.0);
  EXPECT_EQ(strict_answer_score("Bern", {"Zurich", "Bern"}).exact_match, 1.0);
  EXPECT_EQ(strict_answer_score("", {}).exact_match, 1.0);
  EXPECT_EQ(strict_answer_score("x", {}).f1, 0.0);
}

}  // namespace
}  // namespace xcomp
