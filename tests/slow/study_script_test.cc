// tools/study.sh on stories260K with two-step rows and four-item evaluations: the base
// model's full-text and no-prefix baselines are decoded once per data set (a second row
// on the same data evaluates only its compressed system and names the row that has
// them), what it reuses equals what a full evaluation of that row decodes, a row decoded
// another way (another batch) decodes its own, rows whose data holds fewer texts than
// they ask for still share them, and the table shows the reused baselines; a row's name
// spells its settings and a row prepares only the data it reads.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/test_support.h"

namespace xcomp {
namespace {

std::string shell_quoted(const std::string& s) { return "'" + s + "'"; }

class StudyScript : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_dir("study"));
    // K/V rows first: they decode the baselines, the embedding rows then reuse them.
    // (A QA row trains its regeneration row first.)
    for (const char* row : {"qa-babi1-kv-n1", "qa-babi1-embedding-n1"}) {
      test::CommandResult r = study("row " + std::string(row));
      ASSERT_EQ(r.exit_code, 0) << row << "\n" << r.err;
    }
  }
  static void TearDownTestSuite() { delete dir_; }

  // tools/study.sh stories260k ARGS with tiny budgets in this suite's STUDY_DIR.
  static test::CommandResult study(const std::string& args, const std::string& env = "") {
    return test::run_command("STUDY_DIR=" + shell_quoted(*dir_) + " XCOMP=" + shell_quoted(test::xcomp_binary()) +
                             " XCOMP_FIXTURES=" + shell_quoted(test::fixtures_dir()) +
                             " STUDY_REGEN_STEPS=2 STUDY_QA_STEPS=2 STUDY_EVAL_LIMIT=4 OMP_NUM_THREADS=1 " + env +
                             " bash " + shell_quoted(test::source_dir() + "/tools/study.sh") + " stories260k " + args);
  }
  static std::string row_dir(const std::string& row) { return *dir_ + "/stories260k/" + row; }
  static nlohmann::json report(const std::string& eval_dir) {
    return nlohmann::json::parse(test::read_file(eval_dir + "/report.json"));
  }
  static nlohmann::json systems(const std::string& eval_dir) { return report(eval_dir)["results"][0]["systems"]; }
  static bool has_baselines_from(const std::string& row) {
    return std::filesystem::exists(row_dir(row) + "/eval/baselines_from");
  }

  // The embedding row's reused baselines are the K/V row's, and a full evaluation of the
  // embedding row (all three systems, as the study would have run it) decodes the same.
  static void expect_reuse(const std::string& task, const std::string& data, const std::string& reused,
                           const std::string& source) {
    ASSERT_TRUE(has_baselines_from(reused)) << reused;
    EXPECT_EQ(test::read_file(row_dir(reused) + "/eval/baselines_from"), source + "\n");
    EXPECT_FALSE(has_baselines_from(source)) << source;
    const nlohmann::json mine = systems(row_dir(reused) + "/eval");
    ASSERT_EQ(mine.size(), 1u) << mine.dump();
    ASSERT_TRUE(mine.contains("compressed")) << mine.dump();
    const nlohmann::json theirs = systems(row_dir(source) + "/eval");
    ASSERT_EQ(theirs.size(), 3u) << theirs.dump();

    // The study's evaluation of stories260K: one thread, one item at a time.
    const std::string full = *dir_ + "/full-" + reused;
    test::CommandResult r = test::run_xcomp("eval --checkpoint " + shell_quoted(row_dir(reused)) + " --task " + task +
                                            " --data " + shell_quoted(data) +
                                            " --limit 4 --threads 1 --batch 1 --systems "
                                            "compressed,full_context,no_context --out " +
                                            shell_quoted(full));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const nlohmann::json all = systems(full);
    EXPECT_EQ(all["compressed"], mine["compressed"]);
    EXPECT_EQ(all["full_context"], theirs["full_context"]);
    EXPECT_EQ(all["no_context"], theirs["no_context"]);
  }

  static std::string* dir_;
};
std::string* StudyScript::dir_ = nullptr;

TEST_F(StudyScript, RegenerationRowsShareTheirTextLengthsBaselines) {
  expect_reuse("regeneration", *dir_ + "/stories260k/data/tinystories/test-*.h5", "regen-embedding-n1-l96",
               "regen-kv-n1-l96");
}

TEST_F(StudyScript, QaRowsShareTheirSetsBaselines) {
  expect_reuse("qa", *dir_ + "/stories260k/data/babi1/test-*.h5", "qa-babi1-embedding-n1", "qa-babi1-kv-n1");
}

TEST_F(StudyScript, RowDecodedAnotherWayDecodesItsOwnBaselines) {
  // Decoding two items together may change the last bits, so the batch-1 rows' baselines
  // do not stand in for this row's.
  test::CommandResult r = study("row regen-kv-n4-l96", "STUDY_EVAL_BATCH=2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(has_baselines_from("regen-kv-n4-l96"));
  EXPECT_EQ(systems(row_dir("regen-kv-n4-l96") + "/eval").size(), 3u);
  EXPECT_EQ(report(row_dir("regen-kv-n4-l96") + "/eval")["batch"], 2);
}

TEST_F(StudyScript, RowsAskingForMoreTextsThanTheDataHoldsShareBaselines) {
  // 84 of the 377 held-out stories have 505 stories260K tokens (near its 512 positions):
  // both rows decode every one of them, fewer than the limit, and the second still takes
  // the first's baselines. (About 50 s, the decoding of 84 long stories.)
  const std::string kv = "regen-kv-n2-l505", embedding = "regen-embedding-n2-l505";
  for (const std::string& row : {kv, embedding}) {
    test::CommandResult r = study("row " + row, "STUDY_EVAL_LIMIT=100000 STUDY_EVAL_BATCH=16");
    ASSERT_EQ(r.exit_code, 0) << row << "\n" << r.err;
  }
  const nlohmann::json first = report(row_dir(kv) + "/eval");
  EXPECT_EQ(first["limit"], 100000);
  const int items = first["results"][0]["systems"]["no_context"]["items"];
  EXPECT_GT(items, 0);
  EXPECT_LT(items, 100000);
  ASSERT_TRUE(has_baselines_from(embedding));
  EXPECT_EQ(test::read_file(row_dir(embedding) + "/eval/baselines_from"), kv + "\n");
  EXPECT_EQ(systems(row_dir(embedding) + "/eval")["compressed"]["items"], items);
}

TEST_F(StudyScript, RowPreparesOnlyTheDataItReads) {
  // The suite ran bAbI task 1 rows (which train their regeneration rows first) and
  // regeneration rows: no other task's shards were written.
  for (const char* set : {"tinystories", "babi1"})
    EXPECT_TRUE(std::filesystem::exists(*dir_ + "/stories260k/data/" + set)) << set;
  for (const char* set : {"babi2", "babi6"})
    EXPECT_FALSE(std::filesystem::exists(*dir_ + "/stories260k/data/" + set)) << set;
}

TEST_F(StudyScript, TableShowsTheReusedBaselines) {
  test::CommandResult r = study("table");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json kv = systems(row_dir("qa-babi1-kv-n1") + "/eval");
  char cells[64];
  std::snprintf(cells, sizeof cells, "| %.3f / %.3f | %.3f / %.3f |", kv["full_context"]["em"].get<double>(),
                kv["full_context"]["f1"].get<double>(), kv["no_context"]["em"].get<double>(),
                kv["no_context"]["f1"].get<double>());
  const size_t line = r.out.find("| `qa-babi1-embedding-n1` |");
  ASSERT_NE(line, std::string::npos) << r.out;
  const std::string row = r.out.substr(line, r.out.find('\n', line) - line);
  EXPECT_NE(row.find(cells), std::string::npos) << row << "\nexpected the K/V row's baselines " << cells;
}

TEST_F(StudyScript, RowNamesSpellTheirSettings) {
  // -xS scales embedding mode's memory slots (compressor.memory_scale); -after is K/V's.
  test::CommandResult r = study("row regen-embedding-x0.5-n1-l96");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string config = test::read_file(row_dir("regen-embedding-x0.5-n1-l96") + "/config.yaml");
  EXPECT_NE(config.find("  memory_scale: 0.5"), std::string::npos) << config;
  EXPECT_EQ(report(row_dir("regen-embedding-x0.5-n1-l96") + "/eval")["memory_scale"], 0.5);
  for (const char* bad : {"regen-kv-x0.5-n1-l96", "regen-embedding-after-n1-l96", "regen-embedding-x-n1-l96"}) {
    test::CommandResult b = study("row " + std::string(bad));
    EXPECT_EQ(b.exit_code, 2) << bad;
    EXPECT_NE(b.err.find(std::string("study: bad row ") + bad), std::string::npos) << b.err;
  }
}

}  // namespace
}  // namespace xcomp
