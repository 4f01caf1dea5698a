#include "model/tensor.h"

#include <glog/logging.h>

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "model/half.h"

namespace xcomp {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32: return 4;
    case DType::I32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
  }
  LOG(FATAL) << "unknown dtype";
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::I32: return "I32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
  }
  return "?";
}

const char* device_name(Device device) {
  switch (device) {
    case Device::kHost: return "host";
    case Device::kCuda: return "cuda";
  }
  return "?";
}

std::string shape_str(const Shape& shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    CHECK_GE(d, 0) << "negative dimension in " << shape_str(shape);
    n *= d;
  }
  return n;
}

namespace {
// 64-byte alignment keeps BLAS and vectorised loops on their fast paths.
std::shared_ptr<void> allocate_host(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  CHECK(p != nullptr) << "out of host memory allocating " << bytes << " bytes";
  return std::shared_ptr<void>(p, std::free);
}
}  // namespace

Tensor Tensor::empty(Shape shape, DType dtype) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  std::shared_ptr<void> storage = allocate_host(t.nbytes());
  t.data_ = storage.get();
  t.owner_ = std::move(storage);
  t.defined_ = true;
  return t;
}

Tensor Tensor::zeros(Shape shape, DType dtype) {
  Tensor t = empty(std::move(shape), dtype);
  std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::view_of(std::shared_ptr<const void> owner, const void* data, Shape shape, DType dtype) {
  Tensor t;
  t.owner_ = std::move(owner);
  // Views of read-only mappings are only ever read; the const is restored by the
  // const accessors of the callers that hold them.
  t.data_ = const_cast<void*>(data);
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.defined_ = true;
  return t;
}

Tensor Tensor::on_device(std::shared_ptr<void> storage, Shape shape, DType dtype, Device device) {
  Tensor t;
  t.data_ = storage.get();
  t.owner_ = std::move(storage);
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.device_ = device;
  t.defined_ = true;
  return t;
}

int64_t Tensor::dim(int i) const {
  int n = ndim();
  int k = i < 0 ? i + n : i;
  CHECK(k >= 0 && k < n) << "dim " << i << " out of range for shape " << shape_str(shape_);
  return shape_[k];
}

namespace {
template <class T> bool dtype_matches(DType d);
template <> bool dtype_matches<float>(DType d) { return d == DType::F32; }
template <> bool dtype_matches<int32_t>(DType d) { return d == DType::I32; }
template <> bool dtype_matches<uint16_t>(DType d) { return d == DType::F16 || d == DType::BF16; }
}  // namespace

template <class T> T* Tensor::data() {
  CHECK(device_ == Device::kHost) << "host access to a " << device_name(device_) << " tensor";
  CHECK(dtype_matches<T>(dtype_)) << "typed access does not match dtype " << dtype_name(dtype_);
  return static_cast<T*>(data_);
}
template <class T> const T* Tensor::data() const {
  CHECK(device_ == Device::kHost) << "host access to a " << device_name(device_) << " tensor";
  CHECK(dtype_matches<T>(dtype_)) << "typed access does not match dtype " << dtype_name(dtype_);
  return static_cast<const T*>(data_);
}
template float* Tensor::data<float>();
template const float* Tensor::data<float>() const;
template int32_t* Tensor::data<int32_t>();
template const int32_t* Tensor::data<int32_t>() const;
template uint16_t* Tensor::data<uint16_t>();
template const uint16_t* Tensor::data<uint16_t>() const;

Tensor Tensor::reshape(Shape shape) const {
  CHECK_EQ(shape_numel(shape), numel()) << "reshape " << shape_str(shape_) << " -> " << shape_str(shape);
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  CHECK_GE(ndim(), 1);
  CHECK(0 <= begin && begin <= end && end <= shape_[0])
      << "slice [" << begin << ", " << end << ") of " << shape_str(shape_);
  Tensor t = *this;
  int64_t row = numel() / (shape_[0] == 0 ? 1 : shape_[0]);
  t.data_ = static_cast<char*>(data_) + begin * row * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::clone() const {
  CHECK(device_ == Device::kHost) << "clone of a " << device_name(device_) << " tensor (download it first)";
  Tensor t = empty(shape_, dtype_);
  if (nbytes() > 0) std::memcpy(t.data_, data_, nbytes());
  return t;
}

Tensor Tensor::to_f32() const {
  if (dtype_ == DType::F32) return *this;
  CHECK(device_ == Device::kHost) << "to_f32 of a " << device_name(device_) << " tensor";
  Tensor out = empty(shape_, DType::F32);
  float* dst = out.data<float>();
  const int64_t n = numel();
  const uint16_t* src = static_cast<const uint16_t*>(data_);
  switch (dtype_) {
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
      break;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src[i]);
      break;
    default:
      LOG(FATAL) << "to_f32 from " << dtype_name(dtype_);
  }
  return out;
}

}  // namespace xcomp
