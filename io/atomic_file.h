// A file that appears complete or not at all: bytes go to `path + ".tmp"`, which is
// fsynced and renamed over `path` on commit (and the directory fsynced, so the rename
// survives a crash). A writer destroyed before commit removes its temporary file, so
// nothing half-written is ever mistaken for a finished file.
#pragma once

#include <cstddef>
#include <string>

namespace xcomp {

class AtomicFile {
 public:
  // Creates `path + ".tmp"`; throws InputError naming it when that fails.
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Throws InputError naming the file on a write error (a full disk, for example).
  void write(const void* data, size_t size);
  void write(const std::string& bytes) { write(bytes.data(), bytes.size()); }
  // Flushes, renames over the final path. Throws InputError on failure.
  void commit();

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string tmp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

// Writes a whole small file atomically (config.json and the like).
void write_file_atomically(const std::string& path, const std::string& bytes);

}  // namespace xcomp
