#include "trainer/metrics_log.h"

#include <cerrno>
#include <cstring>

#include "model/input_error.h"

namespace xcomp {

MetricsLog::MetricsLog(const std::string& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "a");
  if (file_ == nullptr) throw_input_error(path, ": cannot open for appending: ", std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (file_ != nullptr) std::fclose(file_);
}

void MetricsLog::write(const nlohmann::json& record) {
  const std::string line = record.dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    throw_input_error(path_, ": write failed: ", std::strerror(errno));
}

}  // namespace xcomp
