#include "io/safetensors.h"

#include <glog/logging.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "io/atomic_file.h"
#include "io/mapped_file.h"
#include "model/input_error.h"

namespace xcomp {

namespace {
using json = nlohmann::json;

constexpr size_t kLengthBytes = 8;
constexpr const char* kMetadataKey = "__metadata__";

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

DType parse_dtype(const std::string& path, const std::string& name, const json& value) {
  if (!value.is_string()) throw_input_error(path, ": tensor ", name, ": \"dtype\" must be a string");
  const std::string& s = value.get_ref<const std::string&>();
  if (s == "F32") return DType::F32;
  if (s == "F16") return DType::F16;
  if (s == "BF16") return DType::BF16;
  if (s == "I32") return DType::I32;
  throw_input_error(path, ": unsupported dtype ", s, " for tensor ", name, " (expected F32, F16, BF16 or I32)");
}

// A non-negative integer from the header, or an InputError naming the field.
uint64_t parse_count(const std::string& path, const std::string& name, const char* field, const json& value) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() >= 0) return static_cast<uint64_t>(value.get<int64_t>());
  throw_input_error(path, ": tensor ", name, ": \"", field, "\" must hold non-negative integers, got ", value.dump());
}

Shape parse_shape(const std::string& path, const std::string& name, const json& value) {
  if (!value.is_array()) throw_input_error(path, ": tensor ", name, ": \"shape\" must be an array");
  Shape shape;
  for (const json& d : value) {
    uint64_t n = parse_count(path, name, "shape", d);
    if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      throw_input_error(path, ": tensor ", name, ": dimension ", n, " is too large");
    }
    shape.push_back(static_cast<int64_t>(n));
  }
  return shape;
}

// Bytes the shape needs, or an InputError when that exceeds `limit` (which also rules
// out overflow in the product).
uint64_t shape_bytes(const std::string& path, const std::string& name, const Shape& shape, DType dtype,
                     uint64_t limit) {
  uint64_t bytes = dtype_size(dtype);
  bool zero = false;
  for (int64_t d : shape) zero = zero || d == 0;
  if (zero) return 0;
  for (int64_t d : shape) {
    if (bytes > limit / static_cast<uint64_t>(d)) {
      throw_input_error(path, ": tensor ", name, ": shape ", shape_str(shape), " needs more bytes than the ", limit,
                        "-byte data region holds");
    }
    bytes *= static_cast<uint64_t>(d);
  }
  return bytes;
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const json& value) {
  if (!value.is_object()) throw_input_error(path, ": \"__metadata__\" must be an object of strings");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string()) throw_input_error(path, ": \"__metadata__\" key ", key, " must be a string");
    metadata[key] = v.get<std::string>();
  }
  return metadata;
}

json parse_header(const MappedFile& file, uint64_t* data_start) {
  const std::string& path = file.path();
  if (file.size() < kLengthBytes) {
    throw_input_error(path, ": too short for a safetensors file (", file.size(), " bytes, need at least 8)");
  }
  uint64_t header_len = read_le64(file.data());
  if (header_len > file.size() - kLengthBytes) {
    throw_input_error(path, ": header length ", header_len, " runs past the end of the ", file.size(), "-byte file");
  }
  *data_start = kLengthBytes + header_len;
  const char* begin = reinterpret_cast<const char*>(file.data() + kLengthBytes);
  json header;
  try {
    header = json::parse(begin, begin + header_len);
  } catch (const json::exception& e) {
    throw_input_error(path, ": malformed safetensors header JSON: ", e.what());
  }
  if (!header.is_object()) throw_input_error(path, ": safetensors header must be a JSON object");
  return header;
}
}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  f.mapping_ = MappedFile::open(path);
  uint64_t data_start = 0;
  json header = parse_header(*f.mapping_, &data_start);
  const uint64_t data_size = f.mapping_->size() - data_start;

  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey) {
      f.metadata_ = parse_metadata(path, value);
      continue;
    }
    if (!value.is_object()) throw_input_error(path, ": tensor ", name, ": entry must be an object");
    for (const char* key : {"dtype", "shape", "data_offsets"}) {
      if (!value.contains(key)) throw_input_error(path, ": tensor ", name, ": missing \"", key, "\"");
    }
    Entry e;
    e.dtype = parse_dtype(path, name, value["dtype"]);
    e.shape = parse_shape(path, name, value["shape"]);
    const json& offsets = value["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2) {
      throw_input_error(path, ": tensor ", name, ": \"data_offsets\" must be [begin, end]");
    }
    uint64_t begin = parse_count(path, name, "data_offsets", offsets[0]);
    uint64_t end = parse_count(path, name, "data_offsets", offsets[1]);
    if (begin > end || end > data_size) {
      throw_input_error(path, ": tensor ", name, ": data_offsets [", begin, ", ", end,
                        "] are not a range within the ", data_size, "-byte data region");
    }
    uint64_t needed = shape_bytes(path, name, e.shape, e.dtype, data_size);
    if (end - begin != needed) {
      throw_input_error(path, ": tensor ", name, ": data_offsets [", begin, ", ", end, "] span ", end - begin,
                        " bytes but ", dtype_name(e.dtype), " ", shape_str(e.shape), " needs ", needed);
    }
    e.begin = static_cast<size_t>(data_start + begin);
    e.end = static_cast<size_t>(data_start + end);
    f.entries_.emplace(name, std::move(e));
  }

  // The format requires the tensors to tile the data region exactly: no overlaps (two
  // tensors aliasing bytes) and no holes (bytes that belong to nothing).
  for (const auto& [name, e] : f.entries_) f.names_.push_back(name);
  std::sort(f.names_.begin(), f.names_.end(), [&](const std::string& a, const std::string& b) {
    const Entry& x = f.entries_.at(a);
    const Entry& y = f.entries_.at(b);
    return std::tie(x.begin, x.end, a) < std::tie(y.begin, y.end, b);
  });
  size_t covered = static_cast<size_t>(data_start);
  std::string previous;
  for (const std::string& name : f.names_) {
    const Entry& e = f.entries_.at(name);
    if (e.begin < covered) {
      throw_input_error(path, ": tensor ", name, " overlaps tensor ", previous, " in the data region");
    }
    if (e.begin > covered) {
      throw_input_error(path, ": data bytes [", covered - data_start, ", ", e.begin - data_start,
                        ") are not covered by any tensor (before tensor ", name, ")");
    }
    covered = e.end;
    previous = name;
  }
  if (covered != f.mapping_->size()) {
    throw_input_error(path, ": data bytes [", covered - data_start, ", ", data_size,
                      ") at the end are not covered by any tensor");
  }
  return f;
}

bool SafetensorsFile::contains(const std::string& name) const { return entries_.count(name) != 0; }

const SafetensorsFile::Entry& SafetensorsFile::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) throw_input_error(path_, ": no tensor named ", name);
  return it->second;
}

DType SafetensorsFile::dtype(const std::string& name) const { return entry(name).dtype; }

const Shape& SafetensorsFile::shape(const std::string& name) const { return entry(name).shape; }

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const Entry& e = entry(name);
  const uint8_t* p = mapping_->data() + e.begin;
  // safetensors does not align tensor data; typed reads of a misaligned pointer are
  // undefined behaviour, so such a tensor is copied into aligned storage instead.
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(e.dtype) != 0) {
    Tensor copy = Tensor::empty(e.shape, e.dtype);
    if (copy.nbytes() > 0) std::memcpy(copy.raw(), p, copy.nbytes());
    return copy;
  }
  return Tensor::view_of(mapping_, p, e.shape, e.dtype);
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    CHECK(t.defined()) << "writing undefined tensor " << name << " to " << path;
    CHECK(name != kMetadataKey && seen.insert(name).second) << "duplicate tensor name " << name << " in " << path;
    header[name] = {{"dtype", dtype_name(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string text = header.dump();
  // Padding the header to a multiple of 8 bytes keeps the data region 8-byte aligned,
  // so readers can view F32 tensors in place.
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t length[kLengthBytes];
  for (size_t i = 0; i < kLengthBytes; ++i) length[i] = static_cast<uint8_t>(uint64_t{text.size()} >> (8 * i));

  AtomicFile file(path);
  file.write(length, sizeof length);
  file.write(text);
  for (const auto& [name, t] : tensors) file.write(t.raw(), t.nbytes());
  file.commit();
}

}  // namespace xcomp
