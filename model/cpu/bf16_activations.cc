#include "model/cpu/bf16_activations.h"

#include <glog/logging.h>

#include "model/half.h"

namespace xcomp {

Tensor read_f32(const Tensor& x) {
  CHECK(x.dtype() == DType::F32 || x.dtype() == DType::BF16)
      << "activation of dtype " << dtype_name(x.dtype()) << ": the CPU backend takes F32 or BF16";
  return x.to_f32();
}

Tensor f32_target(const Tensor& out, bool keep_values) {
  if (out.dtype() == DType::F32) return out;
  CHECK(out.dtype() == DType::BF16) << "activation of dtype " << dtype_name(out.dtype())
                                    << ": the CPU backend takes F32 or BF16";
  return keep_values ? out.to_f32() : Tensor::empty(out.shape());
}

void store_f32(const Tensor& result, Tensor& out) {
  CHECK_EQ(result.numel(), out.numel());
  if (result.raw() == out.raw()) return;
  CHECK(out.dtype() == DType::BF16) << "storing fp32 results into " << dtype_name(out.dtype());
  const float* src = result.data<float>();
  uint16_t* dst = out.data<uint16_t>();
  const int64_t n = out.numel();
#pragma omp parallel for schedule(static) if (n > (int64_t{1} << 16))
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

}  // namespace xcomp
