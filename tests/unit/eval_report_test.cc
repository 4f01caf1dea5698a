// Reports built from evaluation records: groups, means, corpus BLEU, retention, and
// the Markdown table.
#include "trainer/eval_report.h"

#include <gtest/gtest.h>

#include <cmath>

namespace xcomp {
namespace {

TEST(EvalReport, RegenerationGroupsByLengthWithRetention) {
  std::vector<nlohmann::json> records = {
      regeneration_record(0, "a", "compressed", 4, "one two three four", "one two three four", true),
      regeneration_record(0, "a", "full_context", 4, "one two three four", "one two three four", true),
      regeneration_record(1, "b", "compressed", 4, "w x y z", "w x q r", false),
      regeneration_record(1, "b", "full_context", 4, "w x y z", "w x y z", true),
      regeneration_record(2, "c", "compressed", 8, "a b c d e f g h", "a b c d e f g h", true)};
  EXPECT_DOUBLE_EQ(records[2]["rouge1"].get<double>(), 0.5);
  const nlohmann::json report = regeneration_report({{"num_tokens", 2}, {"mode", "kv"}}, records);
  EXPECT_EQ(report["task"], "regeneration");
  EXPECT_EQ(report["mode"], "kv");
  ASSERT_EQ(report["results"].size(), 2u);
  const nlohmann::json& four = report["results"][0];
  EXPECT_EQ(four["text_len"], 4);
  EXPECT_DOUBLE_EQ(four["compression_ratio"].get<double>(), 2.0);
  EXPECT_EQ(four["systems"]["compressed"]["items"], 2);
  EXPECT_DOUBLE_EQ(four["systems"]["compressed"]["rouge1"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(four["systems"]["compressed"]["exact_match"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(four["retention"]["exact_match"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(four["systems"]["full_context"]["bleu4"].get<double>(), 1.0);
  // Corpus BLEU over both texts: p1 = 6/8, p2 = 4/6, p3 = 2/4, p4 = 1/2.
  EXPECT_NEAR(four["systems"]["compressed"]["bleu4"].get<double>(), std::pow(0.75 * 4 / 6.0 * 0.5 * 0.5, 0.25), 1e-12);
  EXPECT_TRUE(report["results"][1]["retention"].empty());  // no full_context at length 8

  const std::string table = report_markdown(report);
  EXPECT_NE(table.find("| 4 | 2 | 2.000 | compressed | 2 | 0.750 |"), std::string::npos) << table;
  EXPECT_NE(table.find("| 4 | 2 | 2.000 | retention |  |"), std::string::npos) << table;
  EXPECT_NE(table.find("| 8 | 2 | 4.000 | compressed | 1 | 1.000 |"), std::string::npos) << table;
}

TEST(EvalReport, QaGroupsByDatasetAndAddsAll) {
  std::vector<nlohmann::json> records = {
      qa_record(0, "q0", "squad", "compressed", "Who?", "the Broncos", {"Broncos"}, false),
      qa_record(0, "q0", "squad", "full_context", "Who?", "Broncos", {"Broncos"}, false),
      qa_record(1, "q1", "babi", "compressed", "Where?", "kitchen", {"garden"}, true),
      qa_record(1, "q1", "babi", "full_context", "Where?", "garden", {"garden"}, true)};
  EXPECT_EQ(records[0]["em"], 1.0);
  EXPECT_EQ(records[0]["em_strict"], 0.0);
  const nlohmann::json report = qa_report({{"mode", "kv"}}, records);
  ASSERT_EQ(report["results"].size(), 3u);  // babi, squad, all
  EXPECT_EQ(report["results"][0]["dataset"], "babi");
  EXPECT_EQ(report["results"][2]["dataset"], "all");
  EXPECT_DOUBLE_EQ(report["results"][2]["systems"]["compressed"]["em"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(report["results"][2]["retention"]["em"].get<double>(), 0.5);
  EXPECT_TRUE(report["results"][0]["retention"]["em"].get<double>() == 0.0);
  const std::string table = report_markdown(report);
  EXPECT_NE(table.find("| all | compressed | 2 | 0.500 |"), std::string::npos) << table;
}

TEST(EvalReport, BrokenUtf8FromTheModelIsWrittenAsReplacementCharacters) {
  const nlohmann::json r = regeneration_record(0, "a", "compressed", 2, "ok", "ab\xff", false);
  EXPECT_THROW(r.dump(), nlohmann::json::type_error);
  EXPECT_NE(eval_json_text(r).find("ab\xef\xbf\xbd"), std::string::npos);
}

}  // namespace
}  // namespace xcomp
