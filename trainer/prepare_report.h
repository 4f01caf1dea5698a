// What `xcomp prepare` did, counted so that nothing is dropped silently:
//   records_read = skipped + empty + excluded + the documents (QA: contexts) written to
//   all splits together.
// Printed to standard error at the end and, with --report FILE, written as JSON.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace xcomp {

struct SplitCounts {
  int64_t documents = 0;  // corpus documents, or QA contexts
  int64_t questions = 0;  // QA examples (0 for a corpus)
  int64_t tokens = 0;
  std::vector<std::string> files;
};

struct PrepareReport {
  std::string format;
  bool qa = false;
  std::vector<std::string> inputs;
  std::string tokenizer_name, tokenizer_sha256;
  std::string out_dir;
  int64_t records_read = 0;
  int64_t skipped = 0;    // malformed records (--on-error=skip)
  int64_t empty = 0;      // empty after trimming (QA: a context without questions)
  int64_t excluded = 0;   // outside both date windows, or undated
  int64_t truncated = 0;  // documents (QA: contexts of examples) cut to --max-doc-tokens
  int64_t questions_read = 0, unanswerable = 0;  // QA only
  std::map<std::string, SplitCounts> splits;

  nlohmann::json to_json() const;
  std::string summary() const;  // a few human-readable lines
};

// Malformed records skipped with --on-error=skip: the first few are logged in full,
// the rest only counted, so a badly broken file does not flood the log.
class SkippedRecords {
 public:
  explicit SkippedRecords(int64_t shown = 5) : shown_(shown) {}
  void add(const std::string& message);
  // Logs how many were not shown; call once at the end.
  void finish() const;
  int64_t count() const { return count_; }

 private:
  int64_t shown_, count_ = 0;
};

}  // namespace xcomp
