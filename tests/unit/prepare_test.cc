// `xcomp prepare` end to end on the real fixtures: record counts for every format,
// splits that never put one id (or one QA context) in two splits, byte-identical
// re-runs, tokens that decode back to the input text, and corrupt inputs reported by
// file and line.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "io/line_reader.h"
#include "io/prepare_sources.h"
#include "io/shards.h"
#include "io/tokenizer.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string quoted(const std::string& s) { return "'" + s + "'"; }
std::string tok512() { return test::fixture("stories260K/tok512.model"); }
std::string arxiv() { return test::fixture("arxiv/arxiv-metadata-oai-snapshot.first200.jsonl"); }
std::string mrqa() { return test::fixture("qa/mrqa_SQuAD_dev.jsonl.gz"); }
std::string babi_qa1_test() { return test::fixture("babi/qa1_single-supporting-fact_test.txt"); }

// Runs prepare with the stories260K tokenizer, a report in out/report.json.
test::CommandResult prepare(const std::string& format, const std::string& input, const std::string& out,
                            const std::string& more = "") {
  return test::run_xcomp("prepare --format " + format + " --input " + quoted(input) + " --out " + quoted(out) +
                         " --tokenizer " + quoted(tok512()) + " --report " + quoted(out + "/report.json") + " " +
                         more);
}

json report_of(const std::string& out) { return json::parse(test::read_file(out + "/report.json")); }

// The shard files of one split, in order.
std::vector<std::string> shards_of(const std::string& out, const std::string& split) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(out)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(split + "-", 0) == 0 && name.size() > 3 && name.substr(name.size() - 3) == ".h5")
      files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::string> corpus_ids(const std::string& out, const std::string& split) {
  std::vector<std::string> ids;
  for (const std::string& path : shards_of(out, split)) {
    CorpusShard shard = CorpusShard::open(path);
    for (int64_t d = 0; d < shard.documents(); ++d) ids.push_back(shard.document_id(d));
  }
  return ids;
}

std::vector<QaExample> qa_examples(const std::string& out, const std::string& split) {
  std::vector<QaExample> examples;
  for (const std::string& path : shards_of(out, split)) {
    QaShard shard = QaShard::open(path);
    for (int64_t i = 0; i < shard.examples(); ++i) examples.push_back(shard.example(i));
  }
  return examples;
}

std::vector<json> arxiv_records() {
  std::vector<json> records;
  LineReader lines(arxiv());
  for (std::string line; lines.next(line);) records.push_back(json::parse(line));
  return records;
}

// The first n lines of a (possibly gzip) file, as a plain file.
std::string head_lines(const std::string& path, int n, const std::string& to) {
  LineReader lines(path);
  std::string text;
  for (std::string line; n-- > 0 && lines.next(line);) text += line + "\n";
  test::write_file(to, text);
  return to;
}

// Replaces 1-based line `number` of a text file.
std::string with_line(const std::string& path, int number, const std::string& replacement, const std::string& to) {
  LineReader lines(path);
  std::string text;
  for (std::string line; lines.next(line);) text += (lines.line_number() == number ? replacement : line) + "\n";
  test::write_file(to, text);
  return to;
}

TEST(PrepareArxiv, AllRecordsWithDatesAttributesAndExactText) {
  const std::string out = test::temp_dir("prep") + "/out";
  test::CommandResult r = prepare("arxiv", arxiv(), out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json report = report_of(out);
  EXPECT_EQ(report["records_read"], 200);
  EXPECT_EQ(report["splits"]["train"]["documents"], 200);
  EXPECT_EQ(report["skipped"], 0);
  EXPECT_EQ(report["empty"], 0);
  const std::vector<std::string> files = shards_of(out, "train");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(fs::path(files[0]).filename(), "train-00000.h5");
  EXPECT_FALSE(fs::exists(out + "/.prepare-incomplete"));

  auto tokenizer = load_tokenizer(tok512());
  CorpusShard shard = CorpusShard::open(files[0]);
  const ShardAttributes& a = shard.attributes();
  EXPECT_EQ(a.format, "xcomp-corpus");
  EXPECT_EQ(a.tokenizer_sha256, tokenizer->sha256());
  EXPECT_EQ(a.vocab_size, 512);
  EXPECT_EQ(a.bos_id, 1);
  EXPECT_EQ(a.eos_id, 2);
  EXPECT_EQ(a.source_file, arxiv());
  EXPECT_EQ(a.split, "train");
  const std::vector<json> records = arxiv_records();
  ASSERT_EQ(shard.documents(), 200);
  EXPECT_EQ(shard.document_id(0), "0704.0001");
  EXPECT_EQ(shard.document_date(0), "2007-04-02");  // versions[0].created "Mon, 2 Apr 2007 ..."
  for (int64_t d = 0; d < shard.documents(); ++d) {
    ASSERT_EQ(shard.document_id(d), records[d]["id"].get<std::string>());
    // No BOS/EOS, and the tokens decode to the trimmed abstract, newlines kept.
    ASSERT_EQ(tokenizer->decode(shard.document(d)), trim_whitespace(records[d]["abstract"].get<std::string>()))
        << "document " << d;
  }
}

TEST(PrepareArxiv, RerunGivesByteIdenticalShards) {
  const std::string dir = test::temp_dir("prep");
  for (const char* out : {"/a", "/b"}) {
    test::CommandResult r = prepare("arxiv", arxiv(), dir + out, "--shard-tokens 8000 --title");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  const std::vector<std::string> a = shards_of(dir + "/a", "train"), b = shards_of(dir + "/b", "train");
  ASSERT_GT(a.size(), 3u);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(fs::path(a[i]).filename(), fs::path(b[i]).filename());
    EXPECT_TRUE(test::read_file(a[i]) == test::read_file(b[i])) << a[i] << " differs from " << b[i];
  }
}

TEST(PrepareText, TinyStoriesEveryStoryAndShardLimit) {
  const std::string out = test::temp_dir("prep") + "/out";
  test::CommandResult r = prepare("text", test::fixture("tinystories/tinystories_sample.txt"), out,
                                  "--shard-tokens 150000");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // 2,316 complete stories and the cut-off last one, which counts as a document too.
  const json report = report_of(out);
  EXPECT_EQ(report["records_read"], 2317);
  EXPECT_EQ(report["empty"], 0);
  EXPECT_EQ(report["splits"]["train"]["documents"], 2317);
  auto tokenizer = load_tokenizer(tok512());
  int64_t documents = 0, tokens = 0;
  std::vector<std::string> files = shards_of(out, "train");
  ASSERT_GE(files.size(), 2u);
  for (const std::string& path : files) {
    CorpusShard shard = CorpusShard::open(path);
    EXPECT_LE(shard.tokens(), 150000) << path;
    documents += shard.documents();
    tokens += shard.tokens();
  }
  EXPECT_EQ(documents, 2317);
  EXPECT_EQ(tokens, report["splits"]["train"]["tokens"].get<int64_t>());
  CorpusShard first = CorpusShard::open(files.front());
  EXPECT_EQ(first.document_id(0), "tinystories_sample.txt:1");
  EXPECT_EQ(tokenizer->decode(first.document(0)).rfind("One day, a little girl named Lily found a needle", 0), 0u);
  CorpusShard last = CorpusShard::open(files.back());
  const std::string cut = tokenizer->decode(last.document(last.documents() - 1));
  EXPECT_EQ(cut.substr(cut.size() - 15), "She said it was");
}

TEST(PrepareJsonl, TextAndIdFields) {
  const std::string dir = test::temp_dir("prep");
  test::write_file(dir + "/g.jsonl", "{\"n\": 7, \"body\": \" Hello there. \"}\n\n{\"n\": \"x\", \"body\": \"Bye.\"}\n");
  test::CommandResult r = prepare("jsonl", dir + "/g.jsonl", dir + "/out", "--text-field body --id-field n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(corpus_ids(dir + "/out", "train"), (std::vector<std::string>{"7", "x"}));
  r = prepare("jsonl", dir + "/g.jsonl", dir + "/out2", "--text-field text");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("g.jsonl:1: missing field 'text'"), std::string::npos) << r.err;
}

TEST(PrepareQa, MrqaContextsQuestionsAndReferences) {
  const std::string out = test::temp_dir("prep") + "/out";
  test::CommandResult r = prepare("mrqa", mrqa(), out, "--split test");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json report = report_of(out);
  EXPECT_EQ(report["records_read"], 2067);
  EXPECT_EQ(report["questions_read"], 10507);
  EXPECT_EQ(report["splits"]["test"]["contexts"], 2067);
  EXPECT_EQ(report["splits"]["test"]["questions"], 10507);
  const std::vector<QaExample> examples = qa_examples(out, "test");
  ASSERT_EQ(examples.size(), 10507u);
  auto tokenizer = load_tokenizer(tok512());
  const QaExample& first = examples.front();
  EXPECT_EQ(first.id, "b0626b3af0764c80b1e6f22c114982c1");
  EXPECT_EQ(first.references, std::vector<std::string>(3, "Denver Broncos"));
  EXPECT_EQ(tokenizer->decode(first.answer), "Denver Broncos");
  EXPECT_EQ(tokenizer->decode(first.question), "Which NFL team represented the AFC at Super Bowl 50?");
  EXPECT_EQ(tokenizer->decode(first.context).rfind("Super Bowl 50 was an American football game", 0), 0u);
}

// The official SQuAD layout, built from an MRQA file (the same contexts and questions).
std::string squad_from_mrqa(const std::string& mrqa_path, const std::string& to) {
  json paragraphs = json::array();
  LineReader lines(mrqa_path);
  for (std::string line; lines.next(line);) {
    json record = json::parse(line);
    if (record.contains("header")) continue;
    json qas = json::array();
    for (const json& qa : record["qas"]) {
      json answers = json::array();
      for (const json& a : qa["answers"]) answers.push_back({{"text", a}, {"answer_start", 0}});
      qas.push_back({{"id", qa["qid"]}, {"question", qa["question"]}, {"answers", answers}});
    }
    paragraphs.push_back({{"context", record["context"]}, {"qas", qas}});
  }
  json doc = {{"version", "1.1"}, {"data", {{{"title", "all"}, {"paragraphs", paragraphs}}}}};
  test::write_file(to, doc.dump());
  return to;
}

// SQuAD JSON and MRQA lines holding the same 300 contexts give the same examples. (The
// full 2,067 contexts are counted in the MRQA test; one pass over them is enough.)
TEST(PrepareQa, SquadJsonMatchesMrqa) {
  const std::string dir = test::temp_dir("prep");
  const std::string lines = head_lines(mrqa(), 301, dir + "/mrqa300.jsonl");  // header + 300 contexts
  test::CommandResult r = prepare("squad", squad_from_mrqa(lines, dir + "/squad.json"), dir + "/squad");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = prepare("mrqa", lines, dir + "/mrqa");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json report = report_of(dir + "/squad");
  EXPECT_EQ(report["records_read"], 300);
  EXPECT_EQ(report["splits"]["train"]["contexts"], 300);
  EXPECT_EQ(report["unanswerable"], 0);
  const std::vector<QaExample> squad = qa_examples(dir + "/squad", "train"), from_mrqa = qa_examples(dir + "/mrqa", "train");
  ASSERT_EQ(squad.size(), from_mrqa.size());
  EXPECT_EQ(report["splits"]["train"]["questions"], squad.size());
  for (size_t i = 0; i < squad.size(); ++i) {
    ASSERT_EQ(squad[i].id, from_mrqa[i].id);
    ASSERT_EQ(squad[i].context, from_mrqa[i].context);
    ASSERT_EQ(squad[i].question, from_mrqa[i].question);
    ASSERT_EQ(squad[i].answer, from_mrqa[i].answer);
    ASSERT_EQ(squad[i].references, from_mrqa[i].references);
  }
}

TEST(PrepareQa, BabiTaskTestFile) {
  const std::string out = test::temp_dir("prep") + "/out";
  test::CommandResult r = prepare("babi", babi_qa1_test(), out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json report = report_of(out);
  EXPECT_EQ(report["splits"]["train"]["questions"], 1000);
  EXPECT_EQ(report["splits"]["train"]["contexts"], 200);  // stories
  const std::vector<QaExample> examples = qa_examples(out, "train");
  ASSERT_EQ(examples.size(), 1000u);
  auto tokenizer = load_tokenizer(tok512());
  EXPECT_EQ(examples[0].id, "qa1_single-supporting-fact_test.txt:3");
  EXPECT_EQ(tokenizer->decode(examples[0].context), "John travelled to the hallway.\nMary journeyed to the bathroom.");
  EXPECT_EQ(tokenizer->decode(examples[0].question), "Where is John?");
  EXPECT_EQ(tokenizer->decode(examples[0].answer), "hallway");
  // The second question sees the statements before it, not the first question.
  EXPECT_EQ(tokenizer->decode(examples[1].context),
            "John travelled to the hallway.\nMary journeyed to the bathroom.\nDaniel went back to the bathroom.\n"
            "John moved to the bedroom.");
}

TEST(PrepareSplit, ByDateWindowsCountEveryDocument) {
  const std::string dir = test::temp_dir("prep");
  test::CommandResult r =
      prepare("arxiv", arxiv(), dir + "/a", "--split-by date --cutoff 2007-04 --test-from 2007-04 --test-to 2007-05");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json report = report_of(dir + "/a");
  EXPECT_EQ(report["splits"]["train"]["documents"], 43);  // first versions from March 2007
  EXPECT_EQ(report["splits"]["test"]["documents"], 157);  // April 2007
  EXPECT_EQ(report["excluded"], 0);
  std::vector<std::string> train = corpus_ids(dir + "/a", "train"), test_ids = corpus_ids(dir + "/a", "test");
  std::set<std::string> all(train.begin(), train.end());
  for (const std::string& id : test_ids) EXPECT_TRUE(all.insert(id).second) << id << " is in both splits";
  EXPECT_EQ(all.size(), 200u);

  r = prepare("arxiv", arxiv(), dir + "/b", "--split-by date --cutoff 2007-04 --test-from 2007-05");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  report = report_of(dir + "/b");
  EXPECT_EQ(report["splits"]["train"]["documents"], 43);
  EXPECT_EQ(report["splits"]["test"]["documents"], 0);
  EXPECT_EQ(report["excluded"], 157);
}

TEST(PrepareSplit, ByHashAndByIdsNeverShareAnId) {
  const std::string dir = test::temp_dir("prep");
  test::CommandResult r = prepare("arxiv", arxiv(), dir + "/h", "--split-by hash --test-fraction 0.3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> train = corpus_ids(dir + "/h", "train"), test_ids = corpus_ids(dir + "/h", "test");
  EXPECT_GT(test_ids.size(), 30u);
  EXPECT_LT(test_ids.size(), 90u);
  std::set<std::string> all(train.begin(), train.end());
  for (const std::string& id : test_ids) EXPECT_TRUE(all.insert(id).second) << id << " is in both splits";
  EXPECT_EQ(all.size(), 200u);

  test::write_file(dir + "/ids.txt", "0704.0005\n0704.0010\n\n0704.0100\nnot-in-the-file\n");
  r = prepare("arxiv", arxiv(), dir + "/i", "--split-by ids --test-ids " + quoted(dir + "/ids.txt"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(corpus_ids(dir + "/i", "test"), (std::vector<std::string>{"0704.0005", "0704.0010", "0704.0100"}));
  EXPECT_EQ(corpus_ids(dir + "/i", "train").size(), 197u);
}

TEST(PrepareSplit, ByHashKeepsEachQaContextInOneSplit) {
  const std::string dir = test::temp_dir("prep");
  const std::string input = head_lines(mrqa(), 301, dir + "/mrqa300.jsonl");  // header + 300 contexts
  test::CommandResult r = prepare("mrqa", input, dir + "/out", "--split-by hash --test-fraction 0.3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json report = report_of(dir + "/out");
  const std::vector<QaExample> train = qa_examples(dir + "/out", "train"), test_set = qa_examples(dir + "/out", "test");
  EXPECT_EQ(report["splits"]["train"]["contexts"].get<int>() + report["splits"]["test"]["contexts"].get<int>(), 300);
  EXPECT_EQ(static_cast<int64_t>(train.size() + test_set.size()), report["questions_read"].get<int64_t>());
  std::set<std::vector<int32_t>> train_contexts;
  for (const QaExample& e : train) train_contexts.insert(e.context);
  ASSERT_FALSE(test_set.empty());
  for (const QaExample& e : test_set) EXPECT_EQ(train_contexts.count(e.context), 0u) << e.id << ": context in both splits";
}

TEST(PrepareErrors, TruncatedGzipFailsAndLeavesNoShards) {
  const std::string dir = test::temp_dir("prep");
  test::write_file(dir + "/cut.jsonl.gz", test::read_file(mrqa()).substr(0, 200000));
  for (const char* on_error : {"fail", "skip"}) {
    const std::string out = dir + "/out-" + on_error;
    test::CommandResult r = prepare("mrqa", dir + "/cut.jsonl.gz", out, std::string("--on-error ") + on_error);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find(dir + "/cut.jsonl.gz: gzip stream is truncated"), std::string::npos) << r.err;
    EXPECT_TRUE(shards_of(out, "train").empty());
    EXPECT_FALSE(fs::exists(out + "/.prepare-incomplete"));
  }
}

TEST(PrepareErrors, BadJsonLineFailsOrIsSkippedAndCounted) {
  const std::string dir = test::temp_dir("prep");
  const std::string input = with_line(arxiv(), 5, "{\"id\": \"broken", dir + "/a.jsonl");
  test::CommandResult r = prepare("arxiv", input, dir + "/fail");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(input + ":5: not valid JSON"), std::string::npos) << r.err;
  EXPECT_TRUE(shards_of(dir + "/fail", "train").empty());

  r = prepare("arxiv", input, dir + "/skip", "--on-error=skip");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(input + ":5"), std::string::npos) << "the skipped line is logged: " << r.err;
  const json report = report_of(dir + "/skip");
  EXPECT_EQ(report["records_read"], 200);
  EXPECT_EQ(report["skipped"], 1);
  EXPECT_EQ(report["splits"]["train"]["documents"], 199);
  EXPECT_EQ(corpus_ids(dir + "/skip", "train").size(), 199u);
}

TEST(PrepareErrors, ManySkippedLinesAreShownFirstThenCounted) {
  const std::string dir = test::temp_dir("prep");
  std::string text;
  for (int i = 0; i < 8; ++i) text += "not json " + std::to_string(i) + "\n";
  test::write_file(dir + "/bad.jsonl", text + test::read_file(head_lines(arxiv(), 2, dir + "/two.jsonl")));
  test::CommandResult r = prepare("arxiv", dir + "/bad.jsonl", dir + "/out", "--on-error skip");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("bad.jsonl:5: not valid JSON"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("bad.jsonl:6: not valid JSON"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("skipped 3 more malformed record(s) not shown"), std::string::npos) << r.err;
  const json report = report_of(dir + "/out");
  EXPECT_EQ(report["records_read"], 10);
  EXPECT_EQ(report["skipped"], 8);
  EXPECT_EQ(report["splits"]["train"]["documents"], 2);
}

TEST(PrepareErrors, MissingFieldNamesFileLineAndField) {
  const std::string dir = test::temp_dir("prep");
  json record = arxiv_records()[6];
  record.erase("abstract");
  const std::string input = with_line(arxiv(), 7, record.dump(), dir + "/a.jsonl");
  test::CommandResult r = prepare("arxiv", input, dir + "/out");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(input + ":7: missing field 'abstract' (expected a string)"), std::string::npos) << r.err;
}

TEST(PrepareErrors, BadBabiLine) {
  const std::string dir = test::temp_dir("prep");
  const std::string head = head_lines(babi_qa1_test(), 45, dir + "/head.txt");  // 3 stories, 15 questions
  const std::string input = with_line(head, 20, "5 Where is Mary?\tbathroom", dir + "/qa1.txt");
  test::CommandResult r = prepare("babi", input, dir + "/fail");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(input + ":20: question without supporting line numbers"), std::string::npos) << r.err;

  r = prepare("babi", input, dir + "/skip", "--on-error skip");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json report = report_of(dir + "/skip");
  EXPECT_EQ(report["skipped"], 1);
  EXPECT_EQ(report["splits"]["train"]["contexts"], 2);   // the broken story is left out whole
  EXPECT_EQ(report["splits"]["train"]["questions"], 10);
}

TEST(PrepareOutput, ExistingShardsNeedOverwrite) {
  const std::string dir = test::temp_dir("prep");
  const std::string input = head_lines(arxiv(), 10, dir + "/a.jsonl");
  ASSERT_EQ(prepare("arxiv", input, dir + "/out").exit_code, 0);
  test::CommandResult r = prepare("arxiv", input, dir + "/out");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("already holds shards"), std::string::npos) << r.err;
  r = prepare("arxiv", input, dir + "/out", "--overwrite --max-doc-tokens 40");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(report_of(dir + "/out")["truncated"], 10);  // every abstract is longer than 40 tokens
  CorpusShard shard = CorpusShard::open(shards_of(dir + "/out", "train")[0]);
  for (int64_t d = 0; d < shard.documents(); ++d) EXPECT_EQ(shard.document_length(d), 40);
}

TEST(PrepareOptions, TokenizerFromModelAndBadOptions) {
  const std::string dir = test::temp_dir("prep");
  test::CommandResult r = test::run_xcomp("prepare --format arxiv --input " + quoted(arxiv()) + " --out " +
                                          quoted(dir + "/o") + " --model " +
                                          quoted(test::fixture("stories260K/stories260K.bin")));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("carries no tokenizer"), std::string::npos) << r.err;
  r = prepare("text", arxiv(), dir + "/o", "--split-by date --cutoff 2007-04");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("only --format arxiv has dates"), std::string::npos) << r.err;
  r = prepare("arxiv", arxiv(), dir + "/o", "--split-by date --cutoff 2007-4");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("expected a month as YYYY-MM"), std::string::npos) << r.err;
  r = prepare("text", arxiv(), dir + "/o", "--title");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--title applies to --format arxiv, not text"), std::string::npos) << r.err;
}

TEST(PrepareOptions, SeveralInputsStartTheirOwnShards) {
  const std::string dir = test::temp_dir("prep");
  const std::string a = head_lines(arxiv(), 10, dir + "/a.jsonl");
  const std::string b = head_lines(arxiv(), 3, dir + "/b.jsonl");
  test::CommandResult r = test::run_xcomp("prepare --format arxiv --input " + quoted(a) + " --input " + quoted(b) +
                                          " --out " + quoted(dir + "/out") + " --tokenizer " + quoted(tok512()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> files = shards_of(dir + "/out", "train");
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(CorpusShard::open(files[0]).attributes().source_file, a);
  EXPECT_EQ(CorpusShard::open(files[1]).documents(), 3);
  EXPECT_NE(r.err.find("13 documents read"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace xcomp
