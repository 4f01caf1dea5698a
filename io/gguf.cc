#include "io/gguf.h"

#include <glog/logging.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "io/ggml_types.h"
#include "model/input_error.h"

namespace xcomp {

namespace {

constexpr uint32_t kMaxValueType = static_cast<uint32_t>(GgufValueType::FLOAT64);
constexpr int kMaxArrayDepth = 8;  // deeper nesting is surely corruption, and recursion must stay bounded
constexpr uint32_t kMaxDims = 4;   // GGML_MAX_DIMS
constexpr uint64_t kDefaultAlignment = 32;

// Encoded size of a fixed-size value type; 0 for strings and arrays.
size_t fixed_size(GgufValueType type) {
  switch (type) {
    case GgufValueType::UINT8:
    case GgufValueType::INT8:
    case GgufValueType::BOOL:
      return 1;
    case GgufValueType::UINT16:
    case GgufValueType::INT16:
      return 2;
    case GgufValueType::UINT32:
    case GgufValueType::INT32:
    case GgufValueType::FLOAT32:
      return 4;
    case GgufValueType::UINT64:
    case GgufValueType::INT64:
    case GgufValueType::FLOAT64:
      return 8;
    case GgufValueType::STRING:
    case GgufValueType::ARRAY:
      return 0;
  }
  return 0;
}

// The fewest bytes one value of this type takes: bounds an element count before looping.
size_t min_encoded_size(GgufValueType type) {
  if (type == GgufValueType::STRING) return 8;       // u64 length
  if (type == GgufValueType::ARRAY) return 4 + 8;    // element type, count
  return fixed_size(type);
}

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);  // GGUF is little-endian, as every host xcomp runs on
  return v;
}

}  // namespace

// Reads values from [data, data + size), bounds-checking every read; errors name the
// file and what was being read. GgufValue::elements() reuses it over a validated span.
class GgufValueParser {
 public:
  GgufValueParser(const std::string& path, const uint8_t* data, size_t size, size_t pos = 0)
      : path_(path), data_(data), size_(size), pos_(pos) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  template <class T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v = load<T>(data_ + pos_);
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const std::string& what) {
    const uint64_t length = read<uint64_t>(what);
    if (length > remaining()) {
      throw_input_error(path_, ": ", what, ": string length ", length, " at offset ", pos_ - 8,
                        " runs past the end of the file (", size_, " bytes)");
    }
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(length));
    pos_ += static_cast<size_t>(length);
    return s;
  }

  GgufValueType read_type(const std::string& what) {
    const uint32_t type = read<uint32_t>(what);
    if (type > kMaxValueType) throw_input_error(path_, ": ", what, ": unknown value type ", type);
    return static_cast<GgufValueType>(type);
  }

  GgufValue read_value(GgufValueType type, const std::string& what, int depth) {
    GgufValue v;
    v.type_ = type;
    if (type == GgufValueType::ARRAY) {
      read_array_header(v, what, depth);
    }
    const size_t start = pos_;
    v.data_ = data_ + pos_;
    if (type == GgufValueType::ARRAY) {
      skip_elements(v.element_type_, v.count_, what, depth + 1);
    } else if (type == GgufValueType::STRING) {
      const uint64_t length = read<uint64_t>(what);
      if (length > remaining()) {
        throw_input_error(path_, ": ", what, ": string length ", length, " at offset ", start,
                          " runs past the end of the file (", size_, " bytes)");
      }
      pos_ += static_cast<size_t>(length);
    } else {
      need(fixed_size(type), what);
      pos_ += fixed_size(type);
    }
    v.nbytes_ = pos_ - start;
    return v;
  }

 private:
  void need(uint64_t n, const std::string& what) {
    if (n > remaining()) {
      throw_input_error(path_, ": truncated: ", what, " needs ", n, " bytes at offset ", pos_,
                        " but the file has ", size_, " bytes");
    }
  }

  void read_array_header(GgufValue& v, const std::string& what, int depth) {
    if (depth >= kMaxArrayDepth) {
      throw_input_error(path_, ": ", what, ": arrays nested more than ", kMaxArrayDepth, " deep");
    }
    v.element_type_ = read_type(what);
    v.count_ = read<uint64_t>(what);
    if (v.count_ > remaining() / min_encoded_size(v.element_type_)) {
      throw_input_error(path_, ": ", what, ": array of ", v.count_, " ",
                        gguf_value_type_name(v.element_type_), " elements cannot fit in the ",
                        remaining(), " bytes left in the file");
    }
  }

  void skip_elements(GgufValueType type, uint64_t count, const std::string& what, int depth) {
    if (fixed_size(type) != 0) {
      pos_ += static_cast<size_t>(count) * fixed_size(type);  // fits: checked in read_array_header
      return;
    }
    for (uint64_t i = 0; i < count; ++i) read_value(type, what, depth);
  }

  const std::string& path_;
  const uint8_t* data_;
  size_t size_;
  size_t pos_;
};

const char* gguf_value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::UINT8: return "uint8";
    case GgufValueType::INT8: return "int8";
    case GgufValueType::UINT16: return "uint16";
    case GgufValueType::INT16: return "int16";
    case GgufValueType::UINT32: return "uint32";
    case GgufValueType::INT32: return "int32";
    case GgufValueType::FLOAT32: return "float32";
    case GgufValueType::BOOL: return "bool";
    case GgufValueType::STRING: return "string";
    case GgufValueType::ARRAY: return "array";
    case GgufValueType::UINT64: return "uint64";
    case GgufValueType::INT64: return "int64";
    case GgufValueType::FLOAT64: return "float64";
  }
  return "unknown";
}

// --- GgufValue ---------------------------------------------------------------------------

bool GgufValue::is_integer() const {
  switch (type_) {
    case GgufValueType::UINT8:
    case GgufValueType::INT8:
    case GgufValueType::UINT16:
    case GgufValueType::INT16:
    case GgufValueType::UINT32:
    case GgufValueType::INT32:
    case GgufValueType::UINT64:
    case GgufValueType::INT64:
      return true;
    default:
      return false;
  }
}

bool GgufValue::is_float() const {
  return type_ == GgufValueType::FLOAT32 || type_ == GgufValueType::FLOAT64;
}

bool GgufValue::fits_int64() const {
  CHECK(is_integer()) << "not an integer: " << gguf_value_type_name(type_);
  return type_ != GgufValueType::UINT64 ||
         load<uint64_t>(data_) <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
}

int64_t GgufValue::as_int64() const {
  CHECK(fits_int64());
  switch (type_) {
    case GgufValueType::UINT8: return load<uint8_t>(data_);
    case GgufValueType::INT8: return load<int8_t>(data_);
    case GgufValueType::UINT16: return load<uint16_t>(data_);
    case GgufValueType::INT16: return load<int16_t>(data_);
    case GgufValueType::UINT32: return load<uint32_t>(data_);
    case GgufValueType::INT32: return load<int32_t>(data_);
    case GgufValueType::UINT64: return static_cast<int64_t>(load<uint64_t>(data_));
    case GgufValueType::INT64: return load<int64_t>(data_);
    default: break;
  }
  LOG(FATAL) << "unreachable";
  return 0;
}

uint64_t GgufValue::as_uint64() const {
  if (type_ == GgufValueType::UINT64) return load<uint64_t>(data_);
  const int64_t v = as_int64();
  CHECK_GE(v, 0);
  return static_cast<uint64_t>(v);
}

double GgufValue::as_double() const {
  if (type_ == GgufValueType::FLOAT32) return load<float>(data_);
  CHECK(type_ == GgufValueType::FLOAT64) << "not a float: " << gguf_value_type_name(type_);
  return load<double>(data_);
}

bool GgufValue::as_bool() const {
  CHECK(type_ == GgufValueType::BOOL) << "not a bool: " << gguf_value_type_name(type_);
  return load<uint8_t>(data_) != 0;
}

std::string GgufValue::as_string() const {
  CHECK(type_ == GgufValueType::STRING) << "not a string: " << gguf_value_type_name(type_);
  const uint64_t length = load<uint64_t>(data_);
  CHECK_LE(length, nbytes_ - 8);
  return std::string(reinterpret_cast<const char*>(data_ + 8), static_cast<size_t>(length));
}

GgufValueType GgufValue::element_type() const {
  CHECK(type_ == GgufValueType::ARRAY) << "not an array: " << gguf_value_type_name(type_);
  return element_type_;
}

uint64_t GgufValue::size() const {
  CHECK(type_ == GgufValueType::ARRAY) << "not an array: " << gguf_value_type_name(type_);
  return count_;
}

std::vector<GgufValue> GgufValue::elements() const {
  CHECK(type_ == GgufValueType::ARRAY) << "not an array: " << gguf_value_type_name(type_);
  // Already validated when the file was opened, so this parse cannot fail.
  const std::string context = "array element";
  GgufValueParser parser(context, data_, nbytes_);
  std::vector<GgufValue> out;
  out.reserve(static_cast<size_t>(count_));
  for (uint64_t i = 0; i < count_; ++i) out.push_back(parser.read_value(element_type_, context, 0));
  return out;
}

// --- GgufTensorInfo ----------------------------------------------------------------------

Shape GgufTensorInfo::shape() const { return Shape(ne.rbegin(), ne.rend()); }

int64_t GgufTensorInfo::numel() const { return shape_numel(shape()); }

// --- parsing -----------------------------------------------------------------------------

struct GgufFile::Parser {
  GgufFile& file;
  GgufValueParser reader;

  explicit Parser(GgufFile& f) : file(f), reader(f.file_->path(), f.file_->data(), f.file_->size()) {}

  const std::string& path() const { return file.file_->path(); }

  void parse() {
    const auto [tensor_count, kv_count] = parse_header();
    parse_metadata(kv_count);
    read_alignment();
    parse_tensor_infos(tensor_count);
    // The data section starts at the next multiple of the alignment (no overflow:
    // pos <= file size and the alignment is at most 2^32).
    file.data_offset_ = (reader.pos() + file.alignment_ - 1) / file.alignment_ * file.alignment_;
    check_tensor_extents();
  }

  std::pair<uint64_t, uint64_t> parse_header() {
    const std::string what = "header";
    if (file.file_->size() < 4 || std::memcmp(file.file_->data(), "GGUF", 4) != 0) {
      throw_input_error(path(), ": not a GGUF file (expected the magic \"GGUF\" in its first 4 bytes)");
    }
    reader.read<uint32_t>(what);
    file.version_ = reader.read<uint32_t>(what);
    if (file.version_ != 2 && file.version_ != 3) {
      const bool byte_swapped = file.version_ == 0x02000000u || file.version_ == 0x03000000u;
      throw_input_error(path(), ": unsupported GGUF version ", file.version_,
                        byte_swapped ? " (a big-endian file?)" : "",
                        "; xcomp reads versions 2 and 3");
    }
    const uint64_t tensor_count = reader.read<uint64_t>("tensor count");
    const uint64_t kv_count = reader.read<uint64_t>("metadata count");
    return {tensor_count, kv_count};
  }

  void parse_metadata(uint64_t count) {
    if (count > reader.remaining() / (8 + 4)) {
      throw_input_error(path(), ": metadata count ", count, " cannot fit in the ", reader.remaining(),
                        " bytes left in the file (truncated or corrupt file?)");
    }
    for (uint64_t i = 0; i < count; ++i) {
      std::string key = reader.read_string("key of metadata entry " + std::to_string(i));
      const std::string what = "metadata key '" + key + "'";
      const GgufValueType type = reader.read_type(what);
      GgufValue value = reader.read_value(type, what, 0);
      if (!file.values_.emplace(key, value).second) {
        throw_input_error(path(), ": metadata key '", key, "' appears twice");
      }
      file.keys_.push_back(std::move(key));
    }
  }

  void read_alignment() {
    const std::string key = "general.alignment";
    if (!file.has(key)) return;
    const GgufValue& v = file.values_.at(key);
    if (v.type() != GgufValueType::UINT32) file.wrong_type(key, "uint32");
    const uint64_t alignment = v.as_uint64();
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
      throw_input_error(path(), ": metadata key '", key, "': ", alignment, " is not a power of two");
    }
    file.alignment_ = alignment;
  }

  void parse_tensor_infos(uint64_t count) {
    // name length, n_dims, one dimension, type, offset
    if (count > reader.remaining() / (8 + 4 + 8 + 4 + 8)) {
      throw_input_error(path(), ": tensor count ", count, " cannot fit in the ", reader.remaining(),
                        " bytes left in the file (truncated or corrupt file?)");
    }
    file.tensors_.reserve(static_cast<size_t>(count));
    for (uint64_t i = 0; i < count; ++i) {
      GgufTensorInfo info = parse_tensor_info(i);
      if (!file.tensor_index_.emplace(info.name, file.tensors_.size()).second) {
        throw_input_error(path(), ": tensor '", info.name, "' appears twice");
      }
      file.tensors_.push_back(std::move(info));
    }
  }

  GgufTensorInfo parse_tensor_info(uint64_t index) {
    GgufTensorInfo info;
    info.name = reader.read_string("name of tensor " + std::to_string(index));
    const std::string what = "tensor '" + info.name + "'";
    const uint32_t n_dims = reader.read<uint32_t>(what);
    if (n_dims == 0 || n_dims > kMaxDims) {
      throw_input_error(path(), ": ", what, ": n_dims ", n_dims, " (expected 1 to ", kMaxDims, ")");
    }
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = reader.read<uint64_t>(what);
      // Empty tensors have no use in a model and would make "inside the file" vacuous.
      if (ne == 0) throw_input_error(path(), ": ", what, ": dimension ", d, " is 0");
      if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          numel > std::numeric_limits<int64_t>::max() / static_cast<int64_t>(ne)) {
        throw_input_error(path(), ": ", what, ": dimension ", d, " = ", ne, " makes the tensor impossibly large");
      }
      info.ne.push_back(static_cast<int64_t>(ne));
      numel *= static_cast<int64_t>(ne);
    }
    info.type = reader.read<uint32_t>(what);
    info.offset = reader.read<uint64_t>(what);
    info.nbytes = tensor_nbytes(info, numel, what);
    return info;
  }

  uint64_t tensor_nbytes(const GgufTensorInfo& info, int64_t numel, const std::string& what) const {
    const GgmlTypeInfo* type = ggml_type_info(info.type);
    if (type == nullptr) throw_input_error(path(), ": ", what, ": unknown ggml type id ", info.type);
    if (info.ne[0] % type->block_size != 0) {
      throw_input_error(path(), ": ", what, ": row length ", info.ne[0], " is not a multiple of ",
                        type->name, "'s block size ", type->block_size);
    }
    const uint64_t blocks = static_cast<uint64_t>(numel / type->block_size);
    if (blocks > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(type->type_size)) {
      throw_input_error(path(), ": ", what, ": impossibly large");
    }
    return blocks * static_cast<uint64_t>(type->type_size);
  }

  // Every tensor aligned, inside the file, and overlapping no other.
  void check_tensor_extents() const {
    const uint64_t size = file.file_->size();
    const uint64_t data_size = file.data_offset_ <= size ? size - file.data_offset_ : 0;
    for (const GgufTensorInfo& t : file.tensors_) {
      if (t.offset % file.alignment_ != 0) {
        throw_input_error(path(), ": tensor '", t.name, "': offset ", t.offset,
                          " is not a multiple of the alignment ", file.alignment_);
      }
      if (t.offset > data_size || t.nbytes > data_size - t.offset) {
        throw_input_error(path(), ": tensor '", t.name, "': its ", t.nbytes, " bytes at data offset ", t.offset,
                          " run past the end of the file (the data section holds ", data_size,
                          " bytes; truncated file?)");
      }
    }
    std::vector<const GgufTensorInfo*> by_offset;
    for (const GgufTensorInfo& t : file.tensors_) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
      const GgufTensorInfo& prev = *by_offset[i - 1];
      const GgufTensorInfo& next = *by_offset[i];
      if (prev.offset + prev.nbytes > next.offset) {
        throw_input_error(path(), ": tensor '", next.name, "' at data offset ", next.offset, " overlaps tensor '",
                          prev.name, "' (offset ", prev.offset, ", ", prev.nbytes, " bytes)");
      }
    }
  }
};

// --- GgufFile ----------------------------------------------------------------------------

GgufFile GgufFile::open(const std::string& path) {
  GgufFile file;
  file.file_ = MappedFile::open(path);
  Parser(file).parse();
  return file;
}

bool GgufFile::has(const std::string& key) const { return values_.count(key) != 0; }

const GgufValue& GgufFile::value(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) throw_input_error(path(), ": missing metadata key '", key, "'");
  return it->second;
}

void GgufFile::wrong_type(const std::string& key, const char* expected) const {
  const GgufValue& v = value(key);
  std::string found = gguf_value_type_name(v.type());
  if (v.type() == GgufValueType::ARRAY) found += std::string(" of ") + gguf_value_type_name(v.element_type());
  throw_input_error(path(), ": metadata key '", key, "': expected ", expected, ", found ", found);
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = value(key);
  if (!v.is_integer()) wrong_type(key, "an integer");
  if (!v.fits_int64()) throw_input_error(path(), ": metadata key '", key, "': ", v.as_uint64(), " is out of range");
  return v.as_int64();
}

int64_t GgufFile::get_int(const std::string& key, int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = value(key);
  if (!v.is_float()) wrong_type(key, "a float");
  return v.as_double();
}

double GgufFile::get_float(const std::string& key, double fallback) const {
  return has(key) ? get_float(key) : fallback;
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = value(key);
  if (v.type() != GgufValueType::BOOL) wrong_type(key, "a bool");
  return v.as_bool();
}

bool GgufFile::get_bool(const std::string& key, bool fallback) const {
  return has(key) ? get_bool(key) : fallback;
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = value(key);
  if (v.type() != GgufValueType::STRING) wrong_type(key, "a string");
  return v.as_string();
}

std::string GgufFile::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue& v = value(key);
  if (v.type() != GgufValueType::ARRAY) wrong_type(key, "an array of integers");
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(v.size()));
  for (const GgufValue& e : v.elements()) {
    if (!e.is_integer()) wrong_type(key, "an array of integers");
    if (!e.fits_int64()) throw_input_error(path(), ": metadata key '", key, "': ", e.as_uint64(), " is out of range");
    out.push_back(e.as_int64());
  }
  return out;
}

std::vector<double> GgufFile::get_float_array(const std::string& key) const {
  const GgufValue& v = value(key);
  if (v.type() != GgufValueType::ARRAY) wrong_type(key, "an array of floats");
  std::vector<double> out;
  out.reserve(static_cast<size_t>(v.size()));
  for (const GgufValue& e : v.elements()) {
    if (!e.is_float()) wrong_type(key, "an array of floats");
    out.push_back(e.as_double());
  }
  return out;
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufValue& v = value(key);
  if (v.type() != GgufValueType::ARRAY || v.element_type() != GgufValueType::STRING) {
    wrong_type(key, "an array of strings");
  }
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(v.size()));
  for (const GgufValue& e : v.elements()) out.push_back(e.as_string());
  return out;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t* GgufFile::tensor_data(const GgufTensorInfo& info) const {
  CHECK_LE(data_offset_ + info.offset + info.nbytes, file_->size()) << info.name;  // checked at open
  return file_->data() + data_offset_ + info.offset;
}

Tensor GgufFile::dequantize(const GgufTensorInfo& info) const {
  if (!ggml_can_dequantize(info.type)) {
    const GgmlTypeInfo* type = ggml_type_info(info.type);
    throw_input_error(path(), ": tensor '", info.name, "' has type ", type != nullptr ? type->name : "?",
                      "; xcomp reads F32, F16, BF16, Q8_0, Q4_0 and Q4_1 (re-quantise the model with "
                      "llama.cpp's llama-quantize, or convert from the Hugging Face checkpoint)");
  }
  Tensor out = Tensor::empty(info.shape(), DType::F32);
  // Rows hold whole blocks (checked at open), so the tensor is one long row of blocks.
  ggml_dequantize_row(info.type, tensor_data(info), out.data<float>(), info.numel());
  return out;
}

}  // namespace xcomp
