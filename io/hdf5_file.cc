#include "io/hdf5_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "io/hdf5_check.h"
#include "model/input_error.h"

namespace xcomp {

namespace {

// One lock for every HDF5 call we make. Recursive because a method holding it may
// close handles whose destructors take it again.
std::unique_lock<std::recursive_mutex> hdf5_lock() {
  static std::recursive_mutex mutex;
  std::unique_lock<std::recursive_mutex> lock(mutex);
  quiet_hdf5_errors();
  return lock;
}

// Deflate cannot shrink data by more than about 1032:1, so a dataset claiming far more
// elements than its stored bytes could hold is damaged; refusing it avoids allocating
// whatever a corrupt header claims.
constexpr double kMaxCompressionRatio = 1100.0;
constexpr double kSmallDatasetBytes = 1 << 20;

// Shard datasets are at most 64K-element chunks; smaller data gets one chunk of its size.
constexpr hsize_t kChunkElements = 65536;
constexpr unsigned kDeflateLevel = 4;

const char* type_class_name(H5T_class_t type_class) {
  switch (type_class) {
    case H5T_INTEGER: return "an integer";
    case H5T_FLOAT: return "a float";
    case H5T_STRING: return "a string";
    case H5T_COMPOUND: return "a compound";
    case H5T_ARRAY: return "an array";
    case H5T_VLEN: return "a variable-length sequence";
    default: return "another HDF5 type";
  }
}

// A string datatype living in memory with the given character set and size.
Hdf5Id string_type(H5T_cset_t cset, size_t size) {
  Hdf5Id type(XCOMP_H5_CHECK(H5Tcopy(H5T_C_S1)), H5Tclose);
  XCOMP_H5_CHECK(H5Tset_cset(type.get(), cset));
  XCOMP_H5_CHECK(H5Tset_size(type.get(), size));
  return type;
}

// Reads `count` strings stored with `file_type`, variable- or fixed-length; `read(memory
// type, buffer)` performs the H5Aread or H5Dread.
template <class Read>
std::vector<std::string> read_strings(hid_t file_type, hid_t space, int64_t count, const Read& read,
                                      const std::string& where) {
  htri_t variable = XCOMP_H5_INPUT(H5Tis_variable_str(file_type), where);
  H5T_cset_t cset = XCOMP_H5_INPUT(H5Tget_cset(file_type), where);
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(count));
  if (variable) {
    Hdf5Id memory_type = string_type(cset, H5T_VARIABLE);
    std::vector<char*> pointers(static_cast<size_t>(count), nullptr);
    XCOMP_H5_INPUT(read(memory_type.get(), pointers.data()), where);
    for (const char* p : pointers) out.emplace_back(p ? p : "");
    XCOMP_H5_INPUT(H5Dvlen_reclaim(memory_type.get(), space, H5P_DEFAULT, pointers.data()), where);
    return out;
  }
  size_t size = H5Tget_size(file_type);
  if (size == 0) throw_hdf5_input_error(where, "H5Tget_size", XCOMP_H5_WHERE);
  Hdf5Id memory_type = string_type(cset, size);
  std::vector<char> bytes(static_cast<size_t>(count) * size);
  XCOMP_H5_INPUT(read(memory_type.get(), bytes.data()), where);
  for (int64_t i = 0; i < count; ++i) {
    const char* s = bytes.data() + i * size;
    out.emplace_back(s, strnlen(s, size));
  }
  return out;
}

int64_t element_count(hid_t space, const std::string& where) {
  return XCOMP_H5_INPUT(H5Sget_simple_extent_npoints(space), where);
}

// The rename survives a crash only once the directory entry is on disk too.
void fsync_path(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return;  // best effort: some filesystems refuse to open directories
  ::fsync(fd);
  ::close(fd);
}

std::string parent_directory(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Closing the file closes everything in it, so nothing can keep a damaged file alive.
Hdf5Id strong_close_access() {
  Hdf5Id fapl(XCOMP_H5_CHECK(H5Pcreate(H5P_FILE_ACCESS)), H5Pclose);
  XCOMP_H5_CHECK(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG));
  return fapl;
}

}  // namespace

// --- Hdf5Id ---------------------------------------------------------------------------

Hdf5Id& Hdf5Id::operator=(Hdf5Id&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    closer_ = other.closer_;
    other.id_ = H5I_INVALID_HID;
  }
  return *this;
}

herr_t Hdf5Id::reset() {
  if (id_ < 0) return 0;
  auto lock = hdf5_lock();
  herr_t result = closer_(id_);
  id_ = H5I_INVALID_HID;
  return result;
}

// --- Hdf5InputFile --------------------------------------------------------------------

Hdf5InputFile::Hdf5InputFile(std::string path) : path_(std::move(path)) {
  auto lock = hdf5_lock();
  struct stat info;
  if (::stat(path_.c_str(), &info) != 0) throw_input_error(path_, ": cannot open: ", std::strerror(errno));
  if (!S_ISREG(info.st_mode)) throw_input_error(path_, ": not a regular file");
  htri_t is_hdf5 = XCOMP_H5_INPUT(H5Fis_hdf5(path_.c_str()), path_);
  if (is_hdf5 == 0) throw_input_error(path_, ": not an HDF5 file (no HDF5 signature found)");
  Hdf5Id fapl = strong_close_access();
  file_ = Hdf5Id(XCOMP_H5_INPUT(H5Fopen(path_.c_str(), H5F_ACC_RDONLY, fapl.get()), path_), H5Fclose);
}

Hdf5Id Hdf5InputFile::open_attribute(const std::string& name) const {
  std::string where = path_ + ": attribute '" + name + "'";
  htri_t exists = XCOMP_H5_INPUT(H5Aexists(file_.get(), name.c_str()), where);
  if (!exists) throw_input_error(path_, ": missing attribute '", name, "'");
  return Hdf5Id(XCOMP_H5_INPUT(H5Aopen(file_.get(), name.c_str(), H5P_DEFAULT), where), H5Aclose);
}

std::string Hdf5InputFile::read_string_attribute(const std::string& name) const {
  auto lock = hdf5_lock();
  std::string where = path_ + ": attribute '" + name + "'";
  Hdf5Id attribute = open_attribute(name);
  Hdf5Id type(XCOMP_H5_INPUT(H5Aget_type(attribute.get()), where), H5Tclose);
  H5T_class_t type_class = XCOMP_H5_INPUT(H5Tget_class(type.get()), where);
  if (type_class != H5T_STRING) throw_input_error(where, ": expected a string, found ", type_class_name(type_class));
  Hdf5Id space(XCOMP_H5_INPUT(H5Aget_space(attribute.get()), where), H5Sclose);
  int64_t count = element_count(space.get(), where);
  if (count != 1) throw_input_error(where, ": expected one string, found ", count);
  auto read = [&](hid_t memory_type, void* buffer) { return H5Aread(attribute.get(), memory_type, buffer); };
  return read_strings(type.get(), space.get(), 1, read, where)[0];
}

int64_t Hdf5InputFile::read_int_attribute(const std::string& name) const {
  auto lock = hdf5_lock();
  std::string where = path_ + ": attribute '" + name + "'";
  Hdf5Id attribute = open_attribute(name);
  Hdf5Id type(XCOMP_H5_INPUT(H5Aget_type(attribute.get()), where), H5Tclose);
  H5T_class_t type_class = XCOMP_H5_INPUT(H5Tget_class(type.get()), where);
  if (type_class != H5T_INTEGER) throw_input_error(where, ": expected an integer, found ", type_class_name(type_class));
  Hdf5Id space(XCOMP_H5_INPUT(H5Aget_space(attribute.get()), where), H5Sclose);
  int64_t count = element_count(space.get(), where);
  if (count != 1) throw_input_error(where, ": expected one integer, found ", count);
  int64_t value = 0;
  XCOMP_H5_INPUT(H5Aread(attribute.get(), H5T_NATIVE_INT64, &value), where);
  return value;
}

Hdf5Id Hdf5InputFile::open_dataset(const std::string& name) const {
  std::string where = path_ + ": dataset '" + name + "'";
  htri_t exists = XCOMP_H5_INPUT(H5Lexists(file_.get(), name.c_str(), H5P_DEFAULT), where);
  if (!exists) throw_input_error(path_, ": missing dataset '", name, "'");
  return Hdf5Id(XCOMP_H5_INPUT(H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT), where), H5Dclose);
}

namespace {
// The length of a 1-D dataset of the expected type class, after checking that its
// stored bytes could plausibly hold that many elements.
int64_t checked_length(hid_t dataset, H5T_class_t expected_class, const std::string& where) {
  Hdf5Id type(XCOMP_H5_INPUT(H5Dget_type(dataset), where), H5Tclose);
  H5T_class_t type_class = XCOMP_H5_INPUT(H5Tget_class(type.get()), where);
  if (type_class != expected_class) {
    throw_input_error(where, ": expected ", type_class_name(expected_class), " dataset, found ",
                      type_class_name(type_class));
  }
  Hdf5Id space(XCOMP_H5_INPUT(H5Dget_space(dataset), where), H5Sclose);
  int rank = XCOMP_H5_INPUT(H5Sget_simple_extent_ndims(space.get()), where);
  if (rank != 1) throw_input_error(where, ": expected a 1-D dataset, found ", rank, " dimensions");
  int64_t count = element_count(space.get(), where);
  double claimed = static_cast<double>(count) * static_cast<double>(H5Tget_size(type.get()));
  double stored = static_cast<double>(H5Dget_storage_size(dataset));
  if (claimed > kSmallDatasetBytes && claimed > stored * kMaxCompressionRatio) {
    throw_input_error(where, ": claims ", count, " elements but stores only ", H5Dget_storage_size(dataset),
                      " bytes (damaged file?)");
  }
  return count;
}
}  // namespace

int64_t Hdf5InputFile::dataset_length(const std::string& name) const {
  auto lock = hdf5_lock();
  Hdf5Id dataset = open_dataset(name);
  H5T_class_t type_class = H5T_NO_CLASS;
  {
    Hdf5Id type(XCOMP_H5_INPUT(H5Dget_type(dataset.get()), path_), H5Tclose);
    type_class = XCOMP_H5_INPUT(H5Tget_class(type.get()), path_);
  }
  return checked_length(dataset.get(), type_class, path_ + ": dataset '" + name + "'");
}

void Hdf5InputFile::read_integers(const std::string& name, hid_t memory_type, void* out, int64_t expected) const {
  std::string where = path_ + ": dataset '" + name + "'";
  Hdf5Id dataset = open_dataset(name);
  int64_t count = checked_length(dataset.get(), H5T_INTEGER, where);
  CHECK_EQ(count, expected) << where << " changed length while being read";
  if (count > 0) XCOMP_H5_INPUT(H5Dread(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out), where);
}

std::vector<int32_t> Hdf5InputFile::read_int32_dataset(const std::string& name) const {
  auto lock = hdf5_lock();
  std::vector<int32_t> values(static_cast<size_t>(dataset_length(name)));
  read_integers(name, H5T_NATIVE_INT32, values.data(), static_cast<int64_t>(values.size()));
  return values;
}

std::vector<int64_t> Hdf5InputFile::read_int64_dataset(const std::string& name) const {
  auto lock = hdf5_lock();
  std::vector<int64_t> values(static_cast<size_t>(dataset_length(name)));
  read_integers(name, H5T_NATIVE_INT64, values.data(), static_cast<int64_t>(values.size()));
  return values;
}

std::vector<std::string> Hdf5InputFile::read_string_dataset(const std::string& name) const {
  auto lock = hdf5_lock();
  std::string where = path_ + ": dataset '" + name + "'";
  Hdf5Id dataset = open_dataset(name);
  int64_t count = checked_length(dataset.get(), H5T_STRING, where);
  if (count == 0) return {};
  Hdf5Id type(XCOMP_H5_INPUT(H5Dget_type(dataset.get()), where), H5Tclose);
  Hdf5Id space(XCOMP_H5_INPUT(H5Dget_space(dataset.get()), where), H5Sclose);
  auto read = [&](hid_t memory_type, void* buffer) {
    return H5Dread(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer);
  };
  return read_strings(type.get(), space.get(), count, read, where);
}

// --- Hdf5OutputFile -------------------------------------------------------------------

namespace {
// Creation properties shared by every object we write: no access/modification times,
// so writing the same content twice gives the same bytes.
Hdf5Id timeless_creation(hid_t property_class) {
  Hdf5Id plist(XCOMP_H5_CHECK(H5Pcreate(property_class)), H5Pclose);
  XCOMP_H5_CHECK(H5Pset_obj_track_times(plist.get(), 0));
  return plist;
}

Hdf5Id one_dimensional_space(int64_t count) {
  hsize_t dims[1] = {static_cast<hsize_t>(count)};
  return Hdf5Id(XCOMP_H5_CHECK(H5Screate_simple(1, dims, nullptr)), H5Sclose);
}
}  // namespace

Hdf5OutputFile::Hdf5OutputFile(std::string path) : path_(std::move(path)), tmp_path_(path_ + ".tmp") {
  auto lock = hdf5_lock();
  Hdf5Id fcpl = timeless_creation(H5P_FILE_CREATE);  // covers the root group
  Hdf5Id fapl = strong_close_access();
  file_ = Hdf5Id(XCOMP_H5_INPUT(H5Fcreate(tmp_path_.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()), tmp_path_),
                 H5Fclose);
}

Hdf5OutputFile::~Hdf5OutputFile() {
  if (committed_) return;
  file_.reset();
  ::unlink(tmp_path_.c_str());
}

void Hdf5OutputFile::write_string_attribute(const std::string& name, const std::string& value) {
  auto lock = hdf5_lock();
  std::string where = tmp_path_ + ": attribute '" + name + "'";
  Hdf5Id type = string_type(H5T_CSET_UTF8, H5T_VARIABLE);
  Hdf5Id space(XCOMP_H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose);
  Hdf5Id attribute(
      XCOMP_H5_INPUT(H5Acreate2(file_.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), where),
      H5Aclose);
  const char* text = value.c_str();
  XCOMP_H5_INPUT(H5Awrite(attribute.get(), type.get(), &text), where);
}

void Hdf5OutputFile::write_int_attribute(const std::string& name, int64_t value) {
  auto lock = hdf5_lock();
  std::string where = tmp_path_ + ": attribute '" + name + "'";
  Hdf5Id space(XCOMP_H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose);
  Hdf5Id attribute(XCOMP_H5_INPUT(H5Acreate2(file_.get(), name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT,
                                             H5P_DEFAULT),
                                  where),
                   H5Aclose);
  XCOMP_H5_INPUT(H5Awrite(attribute.get(), H5T_NATIVE_INT64, &value), where);
}

void Hdf5OutputFile::write_integers(const std::string& name, hid_t file_type, hid_t memory_type, const void* data,
                                    int64_t count) {
  auto lock = hdf5_lock();
  std::string where = tmp_path_ + ": dataset '" + name + "'";
  Hdf5Id dcpl = timeless_creation(H5P_DATASET_CREATE);
  if (count > 0) {  // a chunk cannot be larger than a fixed-size dataset, nor empty
    hsize_t chunk[1] = {std::min(kChunkElements, static_cast<hsize_t>(count))};
    XCOMP_H5_CHECK(H5Pset_chunk(dcpl.get(), 1, chunk));
    XCOMP_H5_CHECK(H5Pset_deflate(dcpl.get(), kDeflateLevel));
  }
  Hdf5Id space = one_dimensional_space(count);
  Hdf5Id dataset(
      XCOMP_H5_INPUT(H5Dcreate2(file_.get(), name.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                     where),
      H5Dclose);
  if (count > 0) XCOMP_H5_INPUT(H5Dwrite(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), where);
}

void Hdf5OutputFile::write_int32_dataset(const std::string& name, const std::vector<int32_t>& values) {
  write_integers(name, H5T_STD_I32LE, H5T_NATIVE_INT32, values.data(), static_cast<int64_t>(values.size()));
}

void Hdf5OutputFile::write_int64_dataset(const std::string& name, const std::vector<int64_t>& values) {
  write_integers(name, H5T_STD_I64LE, H5T_NATIVE_INT64, values.data(), static_cast<int64_t>(values.size()));
}

void Hdf5OutputFile::write_string_dataset(const std::string& name, const std::vector<std::string>& values) {
  auto lock = hdf5_lock();
  std::string where = tmp_path_ + ": dataset '" + name + "'";
  Hdf5Id type = string_type(H5T_CSET_UTF8, H5T_VARIABLE);
  Hdf5Id dcpl = timeless_creation(H5P_DATASET_CREATE);
  Hdf5Id space = one_dimensional_space(static_cast<int64_t>(values.size()));
  Hdf5Id dataset(XCOMP_H5_INPUT(H5Dcreate2(file_.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT,
                                           dcpl.get(), H5P_DEFAULT),
                                where),
                 H5Dclose);
  std::vector<const char*> pointers;
  pointers.reserve(values.size());
  for (const std::string& value : values) pointers.push_back(value.c_str());
  if (!values.empty()) {
    XCOMP_H5_INPUT(H5Dwrite(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()), where);
  }
}

void Hdf5OutputFile::commit() {
  CHECK(!committed_) << tmp_path_ << " committed twice";
  {
    auto lock = hdf5_lock();
    if (file_.reset() < 0) throw_hdf5_input_error(tmp_path_, "H5Fclose", XCOMP_H5_WHERE);
  }
  fsync_path(tmp_path_, O_RDONLY);
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    throw_input_error(path_, ": cannot rename ", tmp_path_, " into place: ", std::strerror(errno));
  }
  committed_ = true;
  fsync_path(parent_directory(path_), O_RDONLY | O_DIRECTORY);
}

}  // namespace xcomp
