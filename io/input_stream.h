// A file read front to back in chunks, gzip-compressed or not. Compression is detected
// by the gzip magic bytes (1f 8b), not by the name, so "data.jsonl" that is really
// gzip, or "data.gz" that is not, both read correctly.
//
// zlib's gzread reports a truncated stream as a plain end of file (Z_BUF_ERROR is not
// returned as -1), so every end of input is checked with gzerror: a cut-off download
// or a CRC mismatch is an InputError naming the file, never a silently shorter input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace xcomp {

class InputStream {
 public:
  // Throws InputError naming the path when it cannot be opened.
  explicit InputStream(std::string path);
  ~InputStream();
  InputStream(const InputStream&) = delete;
  InputStream& operator=(const InputStream&) = delete;

  // Reads up to `size` bytes; returns 0 only at the end of a complete input. Throws
  // InputError naming the file on a read error, a truncated or corrupt gzip stream.
  size_t read(char* data, size_t size);

  const std::string& path() const { return path_; }
  bool compressed() const;
  // Bytes of the file itself consumed so far (compressed bytes for gzip): input speed.
  int64_t bytes_consumed() const;

 private:
  struct State;
  std::string path_;
  std::unique_ptr<State> state_;
};

// The whole (decompressed) content, for the one format that is a single JSON document.
std::string read_whole_input(InputStream& in);

}  // namespace xcomp
