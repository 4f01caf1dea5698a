// safetensors files (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length, a JSON header of {name: {dtype, shape, data_offsets}} plus optional
// "__metadata__" strings, then the tensor bytes. Read through a memory map; every size
// and offset in the header is checked before use.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/tensor.h"

namespace xcomp {

class MappedFile;

class SafetensorsFile {
 public:
  // Maps and validates the file; throws InputError naming the file (and tensor) for a
  // header length past the end, malformed JSON, an unknown dtype, a shape that disagrees
  // with its byte range, overlapping or out-of-file ranges, or bytes not covered.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  // Tensor names in file order (ascending data offset).
  const std::vector<std::string>& names() const { return names_; }
  bool contains(const std::string& name) const;
  DType dtype(const std::string& name) const;
  const Shape& shape(const std::string& name) const;
  // A zero-copy view into the mapping; the mapping lives as long as any view.
  Tensor tensor(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  struct Entry {
    DType dtype;
    Shape shape;
    size_t begin;  // offset of the first byte, from the start of the file
    size_t end;
  };
  std::string path_;
  std::shared_ptr<MappedFile> mapping_;
  std::vector<std::string> names_;
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
  const Entry& entry(const std::string& name) const;
};

// Writes a safetensors file: to `path + ".tmp"`, fsynced, then renamed over `path`, so a
// reader never sees a half-written file. Supports F32, F16, BF16 and I32 tensors.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace xcomp
