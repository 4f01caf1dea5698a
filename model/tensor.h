// A dense, row-major tensor. Storage is shared between views, and may be owned by
// something else (a memory-mapped weight file), so loading weights copies at most once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace xcomp {

enum class DType : uint8_t { F32, F16, BF16, I32 };

// Where a tensor's storage lives. Host tensors are read and written directly; device
// tensors only through their backend's ops (model/ops.h: empty, upload, download), so
// model code written over the ops runs on either.
enum class Device : uint8_t { kHost, kCuda };
const char* device_name(Device device);

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& shape);
int64_t shape_numel(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;

  // New host storage, uninitialised / zero-filled.
  static Tensor empty(Shape shape, DType dtype = DType::F32);
  static Tensor zeros(Shape shape, DType dtype = DType::F32);
  // A view of memory kept alive by `owner` (for example a file mapping).
  static Tensor view_of(std::shared_ptr<const void> owner, const void* data, Shape shape, DType dtype);
  // Storage a backend allocated on its device (`storage` frees it when the last view goes).
  static Tensor on_device(std::shared_ptr<void> storage, Shape shape, DType dtype, Device device);

  bool defined() const { return defined_; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const;  // negative counts from the end
  int64_t numel() const { return shape_numel(shape_); }
  DType dtype() const { return dtype_; }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  Device device() const { return device_; }
  bool on_host() const { return device_ == Device::kHost; }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  // Typed host access; CHECKs that the tensor is on the host and that T matches the
  // dtype (float for F32, int32_t for I32, uint16_t for F16 and BF16).
  template <class T> T* data();
  template <class T> const T* data() const;

  // Same storage, new shape with the same element count.
  Tensor reshape(Shape shape) const;
  // Rows [begin, end) along dimension 0, sharing storage.
  Tensor slice0(int64_t begin, int64_t end) const;
  // A deep copy in its own host storage (host tensors only).
  Tensor clone() const;
  // Converts F16/BF16/F32 to a new F32 host tensor (returns *this when already F32).
  Tensor to_f32() const;

 private:
  std::shared_ptr<const void> owner_;
  void* data_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::F32;
  Device device_ = Device::kHost;
  bool defined_ = false;
};

}  // namespace xcomp
