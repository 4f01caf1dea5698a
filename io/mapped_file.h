// A read-only memory map of a whole file. Weight files are read through it so tensors
// can be views of the page cache (F32) or converted straight from it: at most one copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace xcomp {

class MappedFile {
 public:
  // Throws InputError naming the path when it cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// The whole file as bytes (through a mapping: one copy); InputError naming the path when
// it cannot be opened or read.
std::string read_file_bytes(const std::string& path);

}  // namespace xcomp
