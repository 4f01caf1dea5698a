// The CPU backend computing with the CUDA backend's roundings (cuda_weights: bf16, the
// training setting), so the mixed-precision error of a whole step can be measured, and
// budgeted, where there is no GPU:
//   - frozen matrices (upload_weight) are rounded to bf16, as the GPU stores them;
//   - a product with one reads its input rounded to bf16 (the GPU converts it, or it
//     arrives in bf16: product_dtype is BF16, so the model writes the same tensors in
//     bf16 as on the GPU);
//   - other products (LoRA's fp32 weights) and attention read TF32-rounded inputs (10-bit
//     mantissa), as cuBLAS's TF32 mode does.
// What it leaves out: the GPU's summation orders and the roundings inside attention (its
// probabilities and their gradients pass through TF32 products there). On stories260K an
// earlier form of it, run on the code an H200 ran, gave 0.050 (K/V) and 0.096 (embedding)
// for one batch's worst gradient error where the H200 measured 0.061 and 0.121
// (tests/cuda/compressor_cuda_test.cc): the GPU's error is about 1.25x this one's. (One
// batch is a noisy measure; tests/step_error.h has the ones now used.)
#pragma once

#include <set>

#include "model/cpu/cpu_ops.h"
#include "model/half.h"
#include "tests/tf32_rounding.h"

namespace xcomp::test {

class CudaRoundingCpuOps : public CpuOps {
 public:
  DType product_dtype() const override { return DType::BF16; }

  Tensor upload_weight(const Tensor& host) override {
    if (host.ndim() != 2) return CpuOps::upload_weight(host);  // norm weights stay fp32
    Tensor rounded = host.to_f32().clone();
    float* p = rounded.data<float>();
    for (int64_t i = 0; i < rounded.numel(); ++i) p[i] = bf16_to_f32(f32_to_bf16(p[i]));
    frozen_.insert(rounded.raw());
    return rounded;
  }

  void linear(const Tensor& x, const Tensor& w, Tensor& y) override {
    CpuOps::linear(input_for(x, w), weight_for(w), y);
  }
  void linear_add(const Tensor& x, const Tensor& w, Tensor& y) override {
    CpuOps::linear_add(input_for(x, w), weight_for(w), y);
  }
  void linear_backward_input(const Tensor& dy, const Tensor& w, Tensor& dx, bool accumulate) override {
    CpuOps::linear_backward_input(input_for(dy, w), weight_for(w), dx, accumulate);
  }
  void linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, bool accumulate) override {
    CpuOps::linear_backward_weight(rounded(dy, false), rounded(x, false), dw, accumulate);  // LoRA's: TF32
  }
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length, const Tensor& key_valid,
                 Tensor& out) override {
    CpuOps::attention(rounded(q, false), rounded(k, false), rounded(v, false), length, key_valid, out);
  }
  void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, int64_t length,
                          const Tensor& key_valid, Tensor& dq, Tensor& dk, Tensor& dv) override {
    CpuOps::attention_backward(rounded(dout, false), rounded(q, false), rounded(k, false), rounded(v, false), length,
                               key_valid, dq, dk, dv);
  }

 private:
  // An F32 copy of t rounded to bf16 or TF32 (BF16 tensors pass: already rounded).
  static Tensor rounded(const Tensor& t, bool to_bf16) {
    if (t.dtype() != DType::F32) return t;
    Tensor r = t.clone();
    float* p = r.data<float>();
    for (int64_t i = 0; i < r.numel(); ++i)
      p[i] = to_bf16 ? bf16_to_f32(f32_to_bf16(p[i])) : tf32_rounded(p[i], Tf32Ties::kToEven);
    return r;
  }
  bool frozen(const Tensor& w) const { return frozen_.count(w.raw()) > 0; }
  // A product's input: bf16 beside a frozen matrix, TF32 beside a trainable one.
  Tensor input_for(const Tensor& x, const Tensor& w) const { return rounded(x, frozen(w)); }
  // The weight as the product reads it: a frozen one is bf16 already, a trainable one TF32.
  Tensor weight_for(const Tensor& w) const { return frozen(w) ? w : rounded(w, false); }

  std::set<const void*> frozen_;
};

}  // namespace xcomp::test
