#include "io/line_reader.h"

namespace xcomp {

LineReader::LineReader(const std::string& path) : in_(path) {}

// Drops the consumed part of the buffer and appends one more chunk.
bool LineReader::fill() {
  if (ended_) return false;
  buffer_.erase(0, pos_);
  pos_ = 0;
  char chunk[1 << 16];
  const size_t got = in_.read(chunk, sizeof chunk);
  if (got == 0) {
    ended_ = true;
    return false;
  }
  buffer_.append(chunk, got);
  return true;
}

bool LineReader::next(std::string& line) {
  size_t searched = pos_;
  for (;;) {
    const size_t newline = buffer_.find('\n', searched);
    if (newline != std::string::npos) {
      size_t end = newline;
      if (end > pos_ && buffer_[end - 1] == '\r') --end;
      line.assign(buffer_, pos_, end - pos_);
      pos_ = newline + 1;
      ++line_number_;
      return true;
    }
    searched = buffer_.size() - pos_;  // offsets shift by pos_ in fill()
    if (!fill()) break;
  }
  if (pos_ >= buffer_.size()) return false;
  line.assign(buffer_, pos_, buffer_.size() - pos_);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  pos_ = buffer_.size();
  ++line_number_;
  return true;
}

}  // namespace xcomp
