// The input side of `xcomp prepare`: gzip-or-plain streams that refuse truncated input,
// line numbering, and each format's reader on small hand-made inputs.
#include <gtest/gtest.h>
#include <zlib.h>

#include <functional>

#include "io/input_stream.h"
#include "io/line_reader.h"
#include "io/prepare_sources.h"
#include "io/prepare_split.h"
#include "model/input_error.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

void write_gzip(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

std::vector<std::string> all_lines(const std::string& path) {
  LineReader reader(path);
  std::vector<std::string> lines;
  for (std::string line; reader.next(line);) lines.push_back(line);
  return lines;
}

TEST(LineReader, SameLinesPlainOrGzipWithNumbers) {
  const std::string dir = test::temp_dir("lines");
  const std::string text = "first\r\nsecond\n\nlast without newline";
  test::write_file(dir + "/plain.txt", text);
  write_gzip(dir + "/packed.txt", text);  // no .gz suffix: detected by its magic bytes
  const std::vector<std::string> expected = {"first", "second", "", "last without newline"};
  EXPECT_EQ(all_lines(dir + "/plain.txt"), expected);
  EXPECT_EQ(all_lines(dir + "/packed.txt"), expected);
  LineReader reader(dir + "/packed.txt");
  std::string line;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(reader.next(line));
  EXPECT_EQ(reader.line_number(), 3);
}

TEST(LineReader, LinesLongerThanTheReadChunk) {
  const std::string dir = test::temp_dir("lines");
  const std::string long_line(200000, 'x');
  test::write_file(dir + "/long.txt", "a\n" + long_line + "\nb\n");
  EXPECT_EQ(all_lines(dir + "/long.txt"), (std::vector<std::string>{"a", long_line, "b"}));
}

TEST(InputStream, TruncatedGzipIsAnErrorNamingTheFile) {
  const std::string dir = test::temp_dir("gz");
  const std::string whole = test::read_file(test::fixture("qa/mrqa_SQuAD_dev.jsonl.gz"));
  const std::string path = dir + "/cut.jsonl.gz";
  test::write_file(path, whole.substr(0, 100000));
  const std::string message = test::input_error([&] {
    LineReader reader(path);
    for (std::string line; reader.next(line);) {
    }
  });
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
}

TEST(InputStream, CorruptGzipIsAnError) {
  const std::string dir = test::temp_dir("gz");
  write_gzip(dir + "/ok.gz", std::string(5000, 'a') + "tail");
  std::string bytes = test::read_file(dir + "/ok.gz");
  bytes[bytes.size() - 6] ^= 0x5a;  // inside the CRC-32 of the trailer
  test::write_file(dir + "/bad.gz", bytes);
  const std::string message = test::input_error([&] {
    InputStream in(dir + "/bad.gz");
    read_whole_input(in);
  });
  EXPECT_NE(message.find(dir + "/bad.gz"), std::string::npos) << message;
}

TEST(InputStream, MissingFileIsNamed) {
  const std::string message = test::input_error([] { InputStream in("/nonexistent/input.txt"); });
  EXPECT_NE(message.find("/nonexistent/input.txt"), std::string::npos);
}

std::vector<SourceDocument> all_documents(DocumentSource& source) {
  std::vector<SourceDocument> docs;
  for (SourceDocument d; source.next(d);) docs.push_back(d);
  return docs;
}

TEST(TextSource, SeparatorsTrimmingEmptyPiecesAndLines) {
  const std::string dir = test::temp_dir("text");
  // The second separator straddles the 64 KiB read chunk boundary.
  const std::string big(65536 - 26 - 5, 'b');
  test::write_file(dir + "/t.txt", "  one\ntwo \n<|endoftext|>\n\n" + big + "<|endoftext|> \n <|endoftext|>last\n");
  auto source = open_text_source(dir + "/t.txt", "<|endoftext|>");
  const std::vector<SourceDocument> docs = all_documents(*source);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].text, "one\ntwo");
  EXPECT_EQ(docs[0].id, "t.txt:1");
  EXPECT_EQ(docs[1].text, big);
  EXPECT_EQ(docs[1].id, "t.txt:5");  // where its first character is
  EXPECT_EQ(docs[2].text, "last");  // no trailing separator: still a document
  EXPECT_EQ(docs[2].line, 6);
  EXPECT_EQ(source->empty_documents(), 1);
}

TEST(ArxivSource, DatesTitleAndErrors) {
  const std::string dir = test::temp_dir("arxiv");
  test::write_file(dir + "/a.jsonl",
                   R"({"id":"1","title":" T\n  wrapped ","abstract":"  Line one\nline two.\n","versions":[{"version":"v1","created":"Sat, 31 Mar 2007 23:59:00 GMT"}],"update_date":"2010-01-01"})"
                   "\n"
                   R"({"id":"2","title":"U","abstract":"x","versions":[],"update_date":"2009-05-06"})"
                   "\n"
                   R"({"id":"3","abstract":"x","versions":[{"created":"yesterday"}]})"
                   "\n"
                   R"({"id":4,"abstract":"x","update_date":"2009-05-06"})"
                   "\n");
  auto source = open_arxiv_source(dir + "/a.jsonl", /*with_title=*/true);
  SourceDocument d;
  ASSERT_TRUE(source->next(d));
  EXPECT_EQ(d.date, "2007-03-31");
  EXPECT_EQ(d.text, "T\n  wrapped\nLine one\nline two.");
  ASSERT_TRUE(source->next(d));
  EXPECT_EQ(d.date, "2009-05-06");
  EXPECT_EQ(d.text, "U\nx");
  const std::string bad_date = test::input_error([&] { source->next(d); });
  EXPECT_NE(bad_date.find("a.jsonl:3"), std::string::npos) << bad_date;
  EXPECT_NE(bad_date.find("yesterday"), std::string::npos) << bad_date;
  const std::string bad_id = test::input_error([&] { source->next(d); });
  EXPECT_NE(bad_id.find("a.jsonl:4: field 'id' is number, expected a string"), std::string::npos) << bad_id;
  EXPECT_FALSE(source->next(d));
}

std::vector<SourceQaGroup> all_groups(QaSource& source) {
  std::vector<SourceQaGroup> groups;
  for (SourceQaGroup g; source.next(g);) groups.push_back(g);
  return groups;
}

TEST(BabiSource, ContextsAreTheStatementsBeforeEachQuestion) {
  const std::string dir = test::temp_dir("babi");
  test::write_file(dir + "/b.txt",
                   "1 Mary went home.\n2 Where is Mary? \thome\t1\n3 John left.\n4 Where is John?\tout\t3\n"
                   "1 Sam sat.\n2 Where is Sam?\tchair\t1\n");
  auto source = open_babi_source(dir + "/b.txt");
  const std::vector<SourceQaGroup> groups = all_groups(*source);
  ASSERT_EQ(groups.size(), 2u);
  ASSERT_EQ(groups[0].questions.size(), 2u);
  EXPECT_EQ(groups[0].questions[0].context, "Mary went home.");
  EXPECT_EQ(groups[0].questions[0].question, "Where is Mary?");
  EXPECT_EQ(groups[0].questions[0].answers, std::vector<std::string>{"home"});
  EXPECT_EQ(groups[0].questions[0].id, "b.txt:2");
  EXPECT_EQ(groups[0].questions[1].context, "Mary went home.\nJohn left.");
  EXPECT_EQ(groups[1].key, "b.txt:5");
  EXPECT_EQ(groups[1].questions[0].context, "Sam sat.");
}

TEST(BabiSource, BadLineSkipsItsStoryAndReadingGoesOn) {
  const std::string dir = test::temp_dir("babi");
  test::write_file(dir + "/b.txt",
                   "1 A.\n2 Q?\ta\t1\n1 B.\nthree C.\n3 Q?\tb\t1\n1 D.\n2 Q?\td\t1\n");
  auto source = open_babi_source(dir + "/b.txt");
  SourceQaGroup g;
  ASSERT_TRUE(source->next(g));
  EXPECT_EQ(g.questions[0].answers[0], "a");
  const std::string message = test::input_error([&] { source->next(g); });
  EXPECT_NE(message.find("b.txt:4"), std::string::npos) << message;
  EXPECT_NE(message.find("story from line 3 is skipped"), std::string::npos) << message;
  ASSERT_TRUE(source->next(g));
  EXPECT_EQ(g.questions[0].answers[0], "d");
  EXPECT_FALSE(source->next(g));
}

TEST(SquadSource, VersionTwoUnanswerableAndErrorsByJsonPath) {
  const std::string dir = test::temp_dir("squad");
  test::write_file(dir + "/s.json", R"({"version":"v2.0","data":[{"title":"T","paragraphs":[
    {"context":" C1 ","qas":[{"id":"q1","question":"Q1?","answers":[{"text":"A","answer_start":0},{"text":"B","answer_start":0}]},
                              {"id":"q2","question":"Q2?","answers":[],"is_impossible":true,"plausible_answers":[{"text":"P","answer_start":0}]}]},
    {"context":"C2","qas":[{"id":"q3","answers":[]}]},
    {"context":"C3","qas":[{"id":"q4","question":"Q4?","answers":[{"text":"D","answer_start":0}]}]}]}]})");
  auto source = open_squad_source(dir + "/s.json");
  SourceQaGroup g;
  ASSERT_TRUE(source->next(g));
  ASSERT_EQ(g.questions.size(), 2u);
  EXPECT_EQ(g.questions[0].context, "C1");
  EXPECT_EQ(g.questions[0].answers, (std::vector<std::string>{"A", "B"}));
  EXPECT_TRUE(g.questions[1].answers.empty());
  const std::string message = test::input_error([&] { source->next(g); });
  EXPECT_NE(message.find("data[0].paragraphs[1].qas[0]: missing field 'question'"), std::string::npos) << message;
  ASSERT_TRUE(source->next(g));
  EXPECT_EQ(g.questions[0].id, "q4");
  EXPECT_FALSE(source->next(g));
}

TEST(SplitPolicy, DateWindowsAndValidation) {
  SplitOptions o;
  o.by = "date";
  o.cutoff = "2024-01";
  o.test_from = "2024-03";
  o.test_to = "2024-05";
  SplitPolicy split(o);
  EXPECT_EQ(split.assign("a", "2023-12-31"), "train");
  EXPECT_EQ(split.assign("a", "2024-02-10"), "");  // between the windows: excluded
  EXPECT_EQ(split.assign("a", "2024-03-01"), "test");
  EXPECT_EQ(split.assign("a", "2024-04-30"), "test");
  EXPECT_EQ(split.assign("a", "2024-05-01"), "");
  o.test_from = "2023-11";
  EXPECT_NE(test::input_error([&] { SplitPolicy bad(o); }).find("overlap"), std::string::npos);
  o.test_from = "2024-13";
  EXPECT_NE(test::input_error([&] { SplitPolicy bad(o); }).find("YYYY-MM"), std::string::npos);
}

TEST(SplitPolicy, HashIsStableAndNearTheFraction) {
  SplitOptions o;
  o.by = "hash";
  o.test_fraction = 0.25;
  SplitPolicy split(o);
  int test = 0;
  for (int i = 0; i < 4000; ++i) test += split.assign("doc" + std::to_string(i), "") == "test";
  EXPECT_NEAR(test / 4000.0, 0.25, 0.03);
  EXPECT_EQ(split.assign("doc7", ""), SplitPolicy(o).assign("doc7", ""));
}

}  // namespace
}  // namespace xcomp
