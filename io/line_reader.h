// Lines of a text file (gzip or not, see io/input_stream.h), one at a time with their
// 1-based numbers, so a parser can say "file:line: expected ...". Only the current line
// is held in memory.
#pragma once

#include <cstdint>
#include <string>

#include "io/input_stream.h"

namespace xcomp {

class LineReader {
 public:
  explicit LineReader(const std::string& path);

  // The next line without its "\n" (or "\r\n"); false at the end of the input. A last
  // line without a newline is still a line.
  bool next(std::string& line);
  // The number of the line last returned.
  int64_t line_number() const { return line_number_; }
  const std::string& path() const { return in_.path(); }
  int64_t bytes_consumed() const { return in_.bytes_consumed(); }

 private:
  bool fill();
  InputStream in_;
  std::string buffer_;
  size_t pos_ = 0;
  bool ended_ = false;
  int64_t line_number_ = 0;
};

}  // namespace xcomp
