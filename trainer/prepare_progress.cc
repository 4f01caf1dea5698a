#include "trainer/prepare_progress.h"

#include <glog/logging.h>
#include <unistd.h>

#include <cstdio>

namespace xcomp {

PrepareProgress::PrepareProgress(const char* unit) : unit_(unit), terminal_(isatty(STDERR_FILENO) != 0), start_(Clock::now()), last_(start_) {}

void PrepareProgress::update(int64_t records, int64_t tokens, int64_t input_bytes) {
  if (++calls_ % 64 != 0) return;  // reading the clock for every record is not free
  const auto now = Clock::now();
  const auto interval = terminal_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(30000);
  if (now - last_ < interval) return;
  last_ = now;
  show(records, tokens, input_bytes);
}

void PrepareProgress::show(int64_t records, int64_t tokens, int64_t input_bytes) {
  const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  const double mb_per_s = seconds > 0 ? input_bytes / 1e6 / seconds : 0.0;
  char line[160];
  std::snprintf(line, sizeof line, "%lld %s, %lld tokens, %.1f MB of input at %.1f MB/s",
                static_cast<long long>(records), unit_, static_cast<long long>(tokens), input_bytes / 1e6, mb_per_s);
  if (terminal_) {
    std::fprintf(stderr, "\r%s\033[K", line);
    std::fflush(stderr);
    shown_ = true;
  } else {
    LOG(INFO) << line;
  }
}

void PrepareProgress::finish() {
  if (terminal_ && shown_) std::fputc('\n', stderr);
}

}  // namespace xcomp
