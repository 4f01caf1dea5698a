// Progress of `xcomp prepare`: on a terminal one line rewritten in place (\r) at most ten
// times a second; otherwise (a log file, a batch job) a plain log line every 30 seconds,
// as carriage returns make a mess of files.
#pragma once

#include <chrono>
#include <cstdint>

namespace xcomp {

class PrepareProgress {
 public:
  // `unit` names what is counted: "documents" or "questions".
  explicit PrepareProgress(const char* unit);
  // Totals so far; cheap to call for every record.
  void update(int64_t records, int64_t tokens, int64_t input_bytes);
  // Ends the terminal line (the totals stay visible).
  void finish();

 private:
  void show(int64_t records, int64_t tokens, int64_t input_bytes);
  using Clock = std::chrono::steady_clock;
  const char* unit_;
  bool terminal_;
  Clock::time_point start_, last_;
  bool shown_ = false;
  int64_t calls_ = 0;
};

}  // namespace xcomp
