// GGUF (versions 2 and 3), llama.cpp's model file format: a header, typed metadata
// key/values, tensor descriptions, then aligned tensor data. The reader validates every
// count, length and offset against the file before use, so a malformed file gives one
// InputError naming the file (and the key or tensor) instead of a crash.
//
// Layout (little-endian): "GGUF", u32 version, u64 tensor count, u64 metadata count;
// each metadata entry is a string key, a u32 value type and the value; each tensor info
// is a string name, u32 n_dims, u64 ne[n_dims] (ne[0] varies fastest, so ne = [K, N] is
// a PyTorch [N, K] tensor), u32 ggml type, u64 offset into the data section, which starts
// at the next multiple of general.alignment (default 32) after the tensor infos.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/mapped_file.h"
#include "model/tensor.h"

namespace xcomp {

enum class GgufValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

const char* gguf_value_type_name(GgufValueType type);

// One metadata value, a validated view into the file's bytes (valid while the GgufFile
// that made it lives). Decoders CHECK the type: callers test type() first, and
// GgufFile's typed getters turn a wrong type into an InputError.
class GgufValue {
 public:
  GgufValueType type() const { return type_; }
  bool is_integer() const;  // any of the eight integer types
  bool is_float() const;    // float32 or float64

  // Scalars. as_uint64 CHECKs a non-negative integer; as_int64 CHECKs the value fits.
  bool fits_int64() const;
  int64_t as_int64() const;
  uint64_t as_uint64() const;
  double as_double() const;
  bool as_bool() const;
  std::string as_string() const;

  // Arrays: element type and count, and the elements themselves (for any element type,
  // nested arrays included).
  GgufValueType element_type() const;
  uint64_t size() const;
  std::vector<GgufValue> elements() const;

 private:
  friend class GgufValueParser;
  GgufValueType type_ = GgufValueType::UINT8;
  GgufValueType element_type_ = GgufValueType::UINT8;  // arrays only
  uint64_t count_ = 0;                                  // arrays only
  const uint8_t* data_ = nullptr;                       // scalar bytes, string length, or first element
  size_t nbytes_ = 0;                                   // bytes from data_ to the value's end
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // GGUF order: ne[0] varies fastest
  uint32_t type = 0;        // ggml type id (io/ggml_types.h)
  uint64_t offset = 0;      // from the start of the data section
  uint64_t nbytes = 0;

  // The PyTorch shape: ne reversed.
  Shape shape() const;
  int64_t numel() const;
};

class GgufFile {
 public:
  // Maps and parses the file; throws InputError naming the path on anything malformed.
  static GgufFile open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }

  // Metadata, in file order of keys, by name.
  const std::vector<std::string>& keys() const { return keys_; }
  bool has(const std::string& key) const;
  // Throws InputError (file and key) when the key is missing.
  const GgufValue& value(const std::string& key) const;

  // Typed getters: InputError naming the file and key on a missing key, a wrong type or
  // a value out of range. get_int accepts any integer type; get_float float32/float64.
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key) const;
  double get_float(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  std::vector<double> get_float_array(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;

  // Tensors in file order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  // Null when absent.
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  // The tensor's bytes (info.nbytes of them, already checked to lie inside the file).
  const uint8_t* tensor_data(const GgufTensorInfo& info) const;
  // A new F32 tensor in PyTorch shape; InputError naming the file, tensor and type name
  // for types other than F32, F16, BF16, Q8_0, Q4_0 and Q4_1.
  Tensor dequantize(const GgufTensorInfo& info) const;

 private:
  struct Parser;  // io/gguf.cc
  GgufFile() = default;
  [[noreturn]] void wrong_type(const std::string& key, const char* expected) const;

  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::string> keys_;
  std::map<std::string, GgufValue> values_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace xcomp
