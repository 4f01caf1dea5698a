#include "io/input_stream.h"

#include <zlib.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

#include "model/input_error.h"

namespace xcomp {

struct InputStream::State {
  std::FILE* plain = nullptr;
  gzFile gz = nullptr;
  int64_t plain_bytes = 0;
  bool ended = false;
};

namespace {
bool starts_with_gzip_magic(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw_input_error(path, ": cannot open (", std::strerror(errno), ")");
  unsigned char magic[2] = {0, 0};
  const size_t got = std::fread(magic, 1, 2, f);
  std::fclose(f);
  return got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}
}  // namespace

InputStream::InputStream(std::string path) : path_(std::move(path)), state_(new State) {
  if (starts_with_gzip_magic(path_)) {
    state_->gz = gzopen(path_.c_str(), "rb");
    if (state_->gz == nullptr) throw_input_error(path_, ": cannot open gzip stream (", std::strerror(errno), ")");
    gzbuffer(state_->gz, 1 << 17);
  } else {
    state_->plain = std::fopen(path_.c_str(), "rb");
    if (state_->plain == nullptr) throw_input_error(path_, ": cannot open (", std::strerror(errno), ")");
  }
}

InputStream::~InputStream() {
  if (state_->gz != nullptr) gzclose(state_->gz);
  if (state_->plain != nullptr) std::fclose(state_->plain);
}

bool InputStream::compressed() const { return state_->gz != nullptr; }

int64_t InputStream::bytes_consumed() const {
  if (state_->gz != nullptr) return static_cast<int64_t>(gzoffset(state_->gz));
  return state_->plain_bytes;
}

size_t InputStream::read(char* data, size_t size) {
  if (state_->ended || size == 0) return 0;
  if (state_->plain != nullptr) {
    const size_t got = std::fread(data, 1, size, state_->plain);
    if (got < size && std::ferror(state_->plain)) throw_input_error(path_, ": read error (", std::strerror(errno), ")");
    state_->plain_bytes += static_cast<int64_t>(got);
    if (got == 0) state_->ended = true;
    return got;
  }
  const unsigned want = size > static_cast<size_t>(INT_MAX) ? static_cast<unsigned>(INT_MAX) : static_cast<unsigned>(size);
  const int got = gzread(state_->gz, data, want);
  int errnum = Z_OK;
  const char* message = gzerror(state_->gz, &errnum);
  // A partial read can carry the error of its last chunk; it is reported on the next
  // call, which returns 0 with the error still set.
  if (got > 0) return static_cast<size_t>(got);
  if (errnum == Z_BUF_ERROR)
    throw_input_error(path_, ": gzip stream is truncated (", message, "); the file is incomplete");
  if (got < 0 || errnum != Z_OK)
    throw_input_error(path_, ": corrupt gzip stream (", errnum == Z_ERRNO ? std::strerror(errno) : message, ")");
  state_->ended = true;
  return 0;
}

std::string read_whole_input(InputStream& in) {
  std::string all;
  char buffer[1 << 16];
  for (size_t got; (got = in.read(buffer, sizeof buffer)) > 0;) all.append(buffer, got);
  return all;
}

}  // namespace xcomp
