// SQuAD v1.1 / v2.0 in the official layout: {"version", "data": [{"title", "paragraphs":
// [{"context", "qas": [{"id", "question", "answers": [{"text", "answer_start"}],
// "is_impossible", "plausible_answers"}]}]}]}. It is one JSON document, so it is read
// whole (about 40 MB for the v2.0 training set); the paragraphs are then handed out
// one by one. Errors name the JSON path (data[3].paragraphs[2].qas[5]) as the format
// has no meaningful lines.
#include "io/input_stream.h"
#include "io/json_record.h"
#include "io/prepare_sources.h"

namespace xcomp {

using nlohmann::json;

namespace {

std::vector<std::string> answer_texts(const json& qa, const std::string& where) {
  std::vector<std::string> texts;
  const json& answers = require_array(qa, "answers", where);
  for (size_t a = 0; a < answers.size(); ++a) {
    const std::string at = where + ": answers[" + std::to_string(a) + "]";
    if (!answers[a].is_object()) throw MalformedRecord(at + " is " + answers[a].type_name() + ", expected an object");
    texts.push_back(require_string(answers[a], "text", at));
  }
  return texts;
}

SourceQuestion squad_question(const json& qa, const std::string& context, const std::string& where) {
  if (!qa.is_object()) throw MalformedRecord(where + " is " + qa.type_name() + ", expected an object");
  SourceQuestion q;
  q.id = require_string(qa, "id", where);
  q.question = trim_whitespace(require_string(qa, "question", where));
  q.context = context;
  auto impossible = qa.find("is_impossible");
  if (impossible != qa.end() && !impossible->is_boolean())
    throw MalformedRecord(where + ": field 'is_impossible' is " + impossible->type_name() + ", expected a boolean");
  const bool unanswerable = impossible != qa.end() && impossible->get<bool>();
  q.answers = answer_texts(qa, where);
  if (unanswerable && !q.answers.empty())
    throw MalformedRecord(where + ": is_impossible is true but answers is not empty");
  if (!unanswerable && q.answers.empty())
    throw MalformedRecord(where + ": answers is empty, expected a reference answer (or is_impossible: true)");
  return q;
}

class SquadSource : public QaSource {
 public:
  explicit SquadSource(const std::string& path) : path_(path) {
    InputStream in(path);
    const std::string text = read_whole_input(in);
    bytes_ = in.bytes_consumed();
    try {
      root_ = json::parse(text);
    } catch (const json::parse_error& e) {  // its message says where (byte, or line and column)
      throw_input_error(path, ": not valid JSON (expected a SQuAD JSON document): ", e.what());
    }
    if (!root_.is_object()) throw_input_error(path, ": expected a JSON object with a 'data' array (SQuAD layout)");
    auto data = root_.find("data");
    if (data == root_.end() || !data->is_array())
      throw_input_error(path, ": missing 'data' array (expected the SQuAD v1.1/v2.0 layout)");
  }

  bool next(SourceQaGroup& group) override {
    const json& data = root_["data"];
    while (article_ < data.size()) {
      const std::string at = path_ + ": data[" + std::to_string(article_) + "]";
      const json* paragraphs = article_paragraphs(data[article_], at);
      if (paragraphs == nullptr || paragraph_ >= paragraphs->size()) {
        ++article_;
        paragraph_ = 0;
        continue;
      }
      const size_t p = paragraph_++;  // moved past first, so a malformed paragraph can be skipped
      read_paragraph((*paragraphs)[p], at + ".paragraphs[" + std::to_string(p) + "]", group);
      return true;
    }
    return false;
  }
  int64_t bytes_consumed() const override { return bytes_; }

 private:
  // The article's paragraphs; a malformed article is skipped whole.
  const json* article_paragraphs(const json& article, const std::string& at) {
    if (!article.is_object() || !article.contains("paragraphs") || !article["paragraphs"].is_array()) {
      ++article_;
      paragraph_ = 0;
      throw MalformedRecord(at + ": expected an object with a 'paragraphs' array");
    }
    return &article["paragraphs"];
  }

  static void read_paragraph(const json& paragraph, const std::string& at, SourceQaGroup& group) {
    if (!paragraph.is_object()) throw MalformedRecord(at + " is " + paragraph.type_name() + ", expected an object");
    const std::string context = trim_whitespace(require_string(paragraph, "context", at));
    const json& qas = require_array(paragraph, "qas", at);
    group.key = context;
    group.line = 0;
    group.questions.clear();
    for (size_t i = 0; i < qas.size(); ++i)
      group.questions.push_back(squad_question(qas[i], context, at + ".qas[" + std::to_string(i) + "]"));
  }

  std::string path_;
  json root_;
  int64_t bytes_ = 0;
  size_t article_ = 0, paragraph_ = 0;
};

}  // namespace

std::unique_ptr<QaSource> open_squad_source(const std::string& path) { return std::make_unique<SquadSource>(path); }

}  // namespace xcomp
