// MRQA shared-task JSON lines: a header line, then one context a line with its
// questions. Character spans (detected_answers) are not needed: the decoder generates
// the answer text.
#include "io/json_record.h"
#include "io/line_reader.h"
#include "io/prepare_sources.h"

namespace xcomp {

using nlohmann::json;

namespace {

SourceQuestion mrqa_question(const json& qa, const std::string& context, int64_t line, const std::string& where) {
  if (!qa.is_object()) throw MalformedRecord(where + ": is " + qa.type_name() + ", expected an object");
  SourceQuestion q;
  q.id = require_string(qa, "qid", where);
  q.question = trim_whitespace(require_string(qa, "question", where));
  q.context = context;
  q.line = line;
  const json& answers = require_array(qa, "answers", where);
  for (size_t a = 0; a < answers.size(); ++a) {
    if (!answers[a].is_string())
      throw MalformedRecord(where + ": answers[" + std::to_string(a) + "] is " + answers[a].type_name() +
                            ", expected a string");
    q.answers.push_back(answers[a].get<std::string>());
  }
  if (q.answers.empty()) throw MalformedRecord(where + ": answers is empty, expected at least one reference answer");
  return q;
}

class MrqaSource : public QaSource {
 public:
  explicit MrqaSource(const std::string& path) : lines_(path) {}

  bool next(SourceQaGroup& group) override {
    std::string line;
    while (lines_.next(line)) {
      if (trim_whitespace(line).empty()) continue;  // a blank line holds no record
      const std::string where = record_location(lines_.path(), lines_.line_number());
      const json record = parse_json_record(line, where, {"context_tokens", "question_tokens", "detected_answers"});
      if (record.contains("header")) continue;  // the dataset's self-description, not a context
      const std::string context = trim_whitespace(require_string(record, "context", where));
      const json& qas = require_array(record, "qas", where);
      group.key = context;
      group.line = lines_.line_number();
      group.questions.clear();
      for (size_t i = 0; i < qas.size(); ++i)
        group.questions.push_back(
            mrqa_question(qas[i], context, group.line, where + ": qas[" + std::to_string(i) + "]"));
      return true;
    }
    return false;
  }
  int64_t bytes_consumed() const override { return lines_.bytes_consumed(); }

 private:
  LineReader lines_;
};

}  // namespace

std::unique_ptr<QaSource> open_mrqa_source(const std::string& path) { return std::make_unique<MrqaSource>(path); }

}  // namespace xcomp
