// bAbI v1.2 task files: numbered lines "N statement." and "N question?\tanswer\tsupport";
// the numbering restarts at 1 where a new story begins.
#include <cstdlib>
#include <optional>

#include "io/line_reader.h"
#include "io/prepare_sources.h"

namespace xcomp {

namespace {

struct BabiLine {
  int64_t number = 0;
  std::string text;                 // the statement or the question
  std::string answer;               // empty for a statement
  bool question = false;
};

// Parses one line; MalformedRecord naming `where` when it is not of either form.
BabiLine parse_babi_line(const std::string& line, const std::string& where) {
  const char* expected = "expected 'N statement' or 'N question<TAB>answer<TAB>supporting line numbers'";
  const size_t space = line.find(' ');
  if (space == 0 || space == std::string::npos || line.find_first_not_of("0123456789") != space)
    throw MalformedRecord(where + ": no line number; " + expected);
  BabiLine parsed;
  parsed.number = std::strtoll(line.substr(0, space).c_str(), nullptr, 10);
  if (parsed.number < 1 || space > 9) throw MalformedRecord(where + ": bad line number; " + expected);
  const std::string rest = line.substr(space + 1);
  const size_t tab = rest.find('\t');
  parsed.question = tab != std::string::npos;
  parsed.text = trim_whitespace(rest.substr(0, tab));
  if (parsed.question) {
    const size_t tab2 = rest.find('\t', tab + 1);
    if (tab2 == std::string::npos) throw MalformedRecord(where + ": question without supporting line numbers; " + expected);
    parsed.answer = trim_whitespace(rest.substr(tab + 1, tab2 - tab - 1));
    if (parsed.answer.empty()) throw MalformedRecord(where + ": question without an answer; " + expected);
  }
  if (parsed.text.empty()) throw MalformedRecord(where + ": empty text; " + expected);
  return parsed;
}

class BabiSource : public QaSource {
 public:
  explicit BabiSource(const std::string& path) : lines_(path), name_(file_name_of(path)) {}

  // A story is handed out once the next one starts (or the input ends). A malformed
  // line spoils its story (later questions would see a context with a hole): the story
  // is dropped whole, the line is reported as a skipped record, and reading resumes
  // at the next story.
  bool next(SourceQaGroup& group) override {
    std::string line;
    for (;;) {
      if (ready_) {
        group = std::move(*ready_);
        ready_.reset();
        return true;
      }
      if (!lines_.next(line)) {
        finish_story();
        if (ready_) continue;
        return false;
      }
      if (!trim_whitespace(line).empty()) read_line(line);
    }
  }
  int64_t bytes_consumed() const override { return lines_.bytes_consumed(); }

 private:
  void read_line(const std::string& line) {
    const std::string where = record_location(lines_.path(), lines_.line_number());
    BabiLine parsed;
    try {
      parsed = parse_babi_line(line, where);
    } catch (const MalformedRecord& e) {
      fail(e.what());
    }
    if (parsed.number == 1) {
      finish_story();
    } else if (!spoiled_ && parsed.number != last_number_ + 1) {  // a spoiled story may have lost a number
      const int64_t previous = last_number_;
      last_number_ = parsed.number;
      fail(where + ": line number " + std::to_string(parsed.number) + " follows " + std::to_string(previous) +
           "; expected " + std::to_string(previous + 1) + ", or 1 for a new story");
    }
    last_number_ = parsed.number;
    if (!spoiled_) add(parsed);
  }

  void add(const BabiLine& parsed) {
    if (!parsed.question) {
      statements_ += (statements_.empty() ? "" : "\n") + parsed.text;
      return;
    }
    SourceQuestion q;
    q.id = name_ + ":" + std::to_string(lines_.line_number());
    q.context = statements_;
    q.question = parsed.text;
    q.answers = {parsed.answer};
    q.line = lines_.line_number();
    story_.questions.push_back(std::move(q));
  }

  // Ends the story read so far (a usable one goes to ready_) and starts a new one at
  // the current line.
  void finish_story() {
    if (!spoiled_ && (!statements_.empty() || !story_.questions.empty())) ready_ = std::move(story_);
    story_ = SourceQaGroup();
    statements_.clear();
    spoiled_ = false;
    story_.line = lines_.line_number();
    story_.key = name_ + ":" + std::to_string(story_.line);
  }

  [[noreturn]] void fail(const std::string& message) {
    const bool first = !spoiled_;
    spoiled_ = true;
    if (story_.line == 0) story_.line = lines_.line_number();  // the file did not start with line 1
    if (!first) throw MalformedRecord(message);
    throw MalformedRecord(message + " (the story from line " + std::to_string(story_.line) + " is skipped)");
  }

  LineReader lines_;
  std::string name_;
  SourceQaGroup story_;
  std::string statements_;
  std::optional<SourceQaGroup> ready_;
  int64_t last_number_ = 0;
  bool spoiled_ = false;
};

}  // namespace

std::unique_ptr<QaSource> open_babi_source(const std::string& path) { return std::make_unique<BabiSource>(path); }

}  // namespace xcomp
