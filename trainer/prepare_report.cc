#include "trainer/prepare_report.h"

#include <glog/logging.h>

#include <sstream>

namespace xcomp {

nlohmann::json PrepareReport::to_json() const {
  nlohmann::json j;
  j["format"] = format;
  j["inputs"] = inputs;
  j["out"] = out_dir;
  j["tokenizer"] = {{"name", tokenizer_name}, {"sha256", tokenizer_sha256}};
  j["records_read"] = records_read;
  j["skipped"] = skipped;
  j["empty"] = empty;
  j["excluded"] = excluded;
  j["truncated"] = truncated;
  if (qa) {
    j["questions_read"] = questions_read;
    j["unanswerable"] = unanswerable;
  }
  j["splits"] = nlohmann::json::object();
  for (const auto& [name, c] : splits) {
    nlohmann::json s = {{"documents", c.documents}, {"tokens", c.tokens}, {"files", c.files}};
    if (qa) {
      s["contexts"] = c.documents;
      s["questions"] = c.questions;
      s.erase("documents");
    }
    j["splits"][name] = s;
  }
  return j;
}

std::string PrepareReport::summary() const {
  std::ostringstream out;
  const char* unit = qa ? "contexts" : "documents";
  out << "prepare " << format << ": " << records_read << " " << unit << " read";
  if (qa) out << " (" << questions_read << " questions, " << unanswerable << " unanswerable)";
  out << "; skipped " << skipped << " malformed, " << empty << " empty, " << excluded << " excluded, " << truncated
      << " truncated\n";
  for (const auto& [name, c] : splits) {
    out << "  " << name << ": " << c.documents << " " << unit;
    if (qa) out << ", " << c.questions << " questions";
    out << ", " << c.tokens << " tokens in " << c.files.size() << " shard(s)\n";
  }
  return out.str();
}

void SkippedRecords::add(const std::string& message) {
  if (count_ < shown_) LOG(WARNING) << "skipped: " << message;
  ++count_;
}

void SkippedRecords::finish() const {
  if (count_ > shown_) LOG(WARNING) << "skipped " << count_ - shown_ << " more malformed record(s) not shown";
}

}  // namespace xcomp
