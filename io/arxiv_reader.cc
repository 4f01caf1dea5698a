// arXiv metadata JSON lines (the Kaggle "arxiv-metadata-oai-snapshot" file).
#include <cstdlib>
#include <cstring>

#include "io/json_record.h"
#include "io/line_reader.h"
#include "io/prepare_sources.h"

namespace xcomp {

using nlohmann::json;

namespace {

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// "Mon, 2 Apr 2007 19:18:42 GMT" (RFC 2822, as arXiv's OAI records write it) ->
// "2007-04-02"; "" when the text is not of that form.
std::string rfc2822_date(const std::string& text) {
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const size_t comma = text.find(", ");
  if (comma == std::string::npos) return "";
  char day[8] = {0}, month[8] = {0}, year[8] = {0};
  if (std::sscanf(text.c_str() + comma + 2, "%2s %3s %4s", day, month, year) != 3) return "";
  if (!all_digits(day) || !all_digits(year) || std::strlen(year) != 4) return "";
  const int day_number = std::atoi(day);
  if (day_number < 1 || day_number > 31) return "";
  for (int m = 0; m < 12; ++m) {
    if (std::strcmp(month, kMonths[m]) != 0) continue;
    char out[16];
    std::snprintf(out, sizeof out, "%s-%02d-%02d", year, m + 1, day_number);
    return out;
  }
  return "";
}

bool is_iso_date(const std::string& s) {
  return s.size() == 10 && s[4] == '-' && s[7] == '-' && all_digits(s.substr(0, 4)) && all_digits(s.substr(5, 2)) &&
         all_digits(s.substr(8, 2));
}

// The first version's date, else update_date (records from before versions were kept).
std::string first_version_date(const json& record, const std::string& where) {
  auto versions = record.find("versions");
  if (versions != record.end() && versions->is_array() && !versions->empty()) {
    const json& first = (*versions)[0];
    if (!first.is_object()) throw MalformedRecord(where + ": versions[0] is not an object");
    const std::string& created = require_string(first, "created", where + ": versions[0]");
    const std::string date = rfc2822_date(created);
    if (date.empty())
      throw MalformedRecord(where + ": versions[0].created is '" + created +
                            "', expected a date like 'Mon, 2 Apr 2007 19:18:42 GMT'");
    return date;
  }
  const std::string& updated = require_string(record, "update_date", where + " (no versions[0].created)");
  if (!is_iso_date(updated)) throw MalformedRecord(where + ": update_date is '" + updated + "', expected YYYY-MM-DD");
  return updated;
}

class ArxivSource : public DocumentSource {
 public:
  ArxivSource(const std::string& path, bool with_title) : lines_(path), with_title_(with_title) {}

  bool next(SourceDocument& document) override {
    std::string line;
    while (lines_.next(line)) {
      if (trim_whitespace(line).empty()) continue;  // a blank line (a trailing one, say) holds no record
      const std::string where = record_location(lines_.path(), lines_.line_number());
      const json record = parse_json_record(line, where);
      document.id = require_string(record, "id", where);
      document.date = first_version_date(record, where);
      document.text = trim_whitespace(require_string(record, "abstract", where));
      document.line = lines_.line_number();
      if (document.text.empty()) {  // the abstract is the document; a title alone is not one
        ++empty_;
        continue;
      }
      if (with_title_) document.text = trim_whitespace(require_string(record, "title", where)) + "\n" + document.text;
      return true;
    }
    return false;
  }
  int64_t bytes_consumed() const override { return lines_.bytes_consumed(); }
  int64_t empty_documents() const override { return empty_; }

 private:
  LineReader lines_;
  bool with_title_;
  int64_t empty_ = 0;
};

}  // namespace

std::unique_ptr<DocumentSource> open_arxiv_source(const std::string& path, bool with_title) {
  return std::make_unique<ArxivSource>(path, with_title);
}

}  // namespace xcomp
