// Generic JSON lines: one object a line, the text in a named field.
#include "io/json_record.h"
#include "io/line_reader.h"
#include "io/prepare_sources.h"

namespace xcomp {

using nlohmann::json;

namespace {

// A string id as it is, an integer one printed; anything else is malformed.
std::string id_value(const json& record, const std::string& field, const std::string& where) {
  auto it = record.find(field);
  if (it == record.end()) throw MalformedRecord(where + ": missing field '" + field + "' (expected the document id)");
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer()) return it->dump();
  throw MalformedRecord(where + ": field '" + field + "' is " + it->type_name() + ", expected a string or an integer id");
}

class JsonlSource : public DocumentSource {
 public:
  JsonlSource(const std::string& path, std::string text_field, std::string id_field)
      : lines_(path), name_(file_name_of(path)), text_field_(std::move(text_field)), id_field_(std::move(id_field)) {
    if (text_field_.empty()) throw_input_error("--format jsonl needs --text-field NAME");
  }

  bool next(SourceDocument& document) override {
    std::string line;
    while (lines_.next(line)) {
      if (trim_whitespace(line).empty()) continue;  // a blank line holds no record
      const std::string where = record_location(lines_.path(), lines_.line_number());
      const json record = parse_json_record(line, where);
      document.text = trim_whitespace(require_string(record, text_field_, where));
      document.id = id_field_.empty() ? name_ + ":" + std::to_string(lines_.line_number())
                                      : id_value(record, id_field_, where);
      document.date.clear();
      document.line = lines_.line_number();
      if (document.text.empty()) {
        ++empty_;
        continue;
      }
      return true;
    }
    return false;
  }
  int64_t bytes_consumed() const override { return lines_.bytes_consumed(); }
  int64_t empty_documents() const override { return empty_; }

 private:
  LineReader lines_;
  std::string name_, text_field_, id_field_;
  int64_t empty_ = 0;
};

}  // namespace

std::unique_ptr<DocumentSource> open_jsonl_source(const std::string& path, const std::string& text_field,
                                                  const std::string& id_field) {
  return std::make_unique<JsonlSource>(path, text_field, id_field);
}

}  // namespace xcomp
