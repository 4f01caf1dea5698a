// The small slice of HDF5 the shard formats use, behind two classes so no other code
// calls the library: a file read whole (root-group attributes, 1-D datasets) and a file
// written to `path + ".tmp"` and renamed into place. Every call is checked
// (io/hdf5_check.h) and every error names the file.
//
// Thread safety: all HDF5 calls made here hold one process-wide lock, so shards can be
// read on the loader's prefetch thread even with an HDF5 built without thread safety.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace xcomp {

// An HDF5 identifier, closed with its own close function when it goes out of scope.
class Hdf5Id {
 public:
  using Closer = herr_t (*)(hid_t);
  Hdf5Id() = default;
  Hdf5Id(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Hdf5Id() { reset(); }
  Hdf5Id(Hdf5Id&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = H5I_INVALID_HID; }
  Hdf5Id& operator=(Hdf5Id&& other) noexcept;
  Hdf5Id(const Hdf5Id&) = delete;
  Hdf5Id& operator=(const Hdf5Id&) = delete;

  hid_t get() const { return id_; }
  // Closes now; returns the close call's result (negative on failure).
  herr_t reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

// A shard file opened read-only. Lookups of something absent or of the wrong type throw
// InputError naming the file and the attribute or dataset.
class Hdf5InputFile {
 public:
  // InputError when the file is missing, is not HDF5, or is damaged.
  explicit Hdf5InputFile(std::string path);
  const std::string& path() const { return path_; }

  // Root-group attributes. Strings may be variable- or fixed-length; integers any width.
  std::string read_string_attribute(const std::string& name) const;
  int64_t read_int_attribute(const std::string& name) const;

  // Length of a 1-D dataset.
  int64_t dataset_length(const std::string& name) const;
  // Whole 1-D integer datasets. Values outside int32 are clipped by HDF5's conversion;
  // callers range-check what they read (token ids against the vocabulary).
  std::vector<int32_t> read_int32_dataset(const std::string& name) const;
  std::vector<int64_t> read_int64_dataset(const std::string& name) const;
  std::vector<std::string> read_string_dataset(const std::string& name) const;

 private:
  Hdf5Id open_dataset(const std::string& name) const;
  Hdf5Id open_attribute(const std::string& name) const;
  void read_integers(const std::string& name, hid_t memory_type, void* out, int64_t expected) const;

  std::string path_;
  Hdf5Id file_;
};

// A file written as `path + ".tmp"` (created by the constructor, so an unwritable
// directory fails before any work is done) and renamed over `path` by commit(). Destroyed
// without commit(), it removes the temporary file. Datasets record no times, so the
// same content gives identical bytes.
class Hdf5OutputFile {
 public:
  explicit Hdf5OutputFile(std::string path);
  ~Hdf5OutputFile();
  Hdf5OutputFile(const Hdf5OutputFile&) = delete;
  Hdf5OutputFile& operator=(const Hdf5OutputFile&) = delete;

  const std::string& path() const { return path_; }
  const std::string& temporary_path() const { return tmp_path_; }

  // Root-group attributes: strings as variable-length UTF-8, integers as int64.
  void write_string_attribute(const std::string& name, const std::string& value);
  void write_int_attribute(const std::string& name, int64_t value);
  // 1-D datasets; integer ones chunked and deflate-compressed when not empty.
  void write_int32_dataset(const std::string& name, const std::vector<int32_t>& values);
  void write_int64_dataset(const std::string& name, const std::vector<int64_t>& values);
  // Variable-length UTF-8 strings.
  void write_string_dataset(const std::string& name, const std::vector<std::string>& values);

  // Closes the file, fsyncs it and renames it into place (then fsyncs the directory).
  void commit();

 private:
  void write_integers(const std::string& name, hid_t file_type, hid_t memory_type, const void* data,
                      int64_t count);

  std::string path_;
  std::string tmp_path_;
  Hdf5Id file_;
  bool committed_ = false;
};

}  // namespace xcomp
