// Plain text with a document separator (TinyStories' "<|endoftext|>", for example),
// read in chunks: neither the file nor a line has to fit in memory, only a document.
#include <algorithm>

#include "io/input_stream.h"
#include "io/prepare_sources.h"

namespace xcomp {

namespace {

class TextSource : public DocumentSource {
 public:
  TextSource(const std::string& path, const std::string& separator)
      : in_(path), name_(file_name_of(path)), separator_(separator) {
    if (separator_.empty()) throw_input_error("the text separator is empty");
    if (separator_.find('\n') != std::string::npos) throw_input_error("the text separator may not contain a newline");
  }

  bool next(SourceDocument& document) override {
    std::string raw;
    int64_t raw_start_line = 0;
    while (take_piece(raw, raw_start_line)) {
      const size_t first = raw.find_first_not_of(" \t\r\n\f\v");
      if (first == std::string::npos) {
        ++empty_;
        continue;
      }
      // The document starts at its first non-blank character; name that line.
      document.line = raw_start_line + std::count(raw.begin(), raw.begin() + first, '\n');
      document.id = name_ + ":" + std::to_string(document.line);
      document.date.clear();
      document.text = trim_whitespace(raw);
      return true;
    }
    return false;
  }
  int64_t bytes_consumed() const override { return in_.bytes_consumed(); }
  int64_t empty_documents() const override { return empty_; }

 private:
  // The text up to the next separator (or the end of the input), and the line it
  // starts on; false when the input is used up.
  bool take_piece(std::string& piece, int64_t& start_line) {
    if (done_) return false;
    piece.clear();
    start_line = line_;
    for (;;) {
      const size_t at = pending_.find(separator_, pos_);
      if (at != std::string::npos) {
        piece.append(pending_, pos_, at - pos_);
        pos_ = at + separator_.size();
        line_ += std::count(piece.begin(), piece.end(), '\n');
        return true;
      }
      // Keep a tail that could be the start of a separator split across chunks.
      const size_t available = pending_.size() - pos_;
      const size_t keep = std::min(available, separator_.size() - 1);
      piece.append(pending_, pos_, available - keep);
      pending_.erase(0, pending_.size() - keep);
      pos_ = 0;
      char chunk[1 << 16];
      const size_t got = in_.read(chunk, sizeof chunk);
      if (got == 0) break;
      pending_.append(chunk, got);
    }
    piece += pending_;
    pending_.clear();
    done_ = true;
    line_ += std::count(piece.begin(), piece.end(), '\n');
    return true;
  }

  InputStream in_;
  std::string name_, separator_;
  std::string pending_;  // read but not yet handed out: from pos_ on
  size_t pos_ = 0;
  int64_t line_ = 1;  // the line the unread text starts on
  bool done_ = false;
  int64_t empty_ = 0;
};

}  // namespace

std::unique_ptr<DocumentSource> open_text_source(const std::string& path, const std::string& separator) {
  return std::make_unique<TextSource>(path, separator);
}

}  // namespace xcomp
