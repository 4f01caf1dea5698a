// metrics.jsonl: one JSON object a line, appended and flushed per record, so a run that
// dies keeps every line it wrote and a resumed run continues the same file.
#pragma once

#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

namespace xcomp {

class MetricsLog {
 public:
  // Opens `path` for appending; InputError naming it when that fails.
  explicit MetricsLog(const std::string& path);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void write(const nlohmann::json& record);

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace xcomp
