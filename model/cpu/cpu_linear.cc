// Matrix products and table lookups of the CPU backend. Activations may be BF16
// (Ops::product_dtype; bf16_activations.h); weights are F32.
#include <glog/logging.h>

#include <cstring>

#include "model/cpu/bf16_activations.h"
#include "model/cpu/cpu_gemm.h"
#include "model/cpu/cpu_ops.h"

namespace xcomp {

void CpuOps::embedding(const Tensor& table, const Tensor& ids, Tensor& out) {
  const int64_t rows = table.dim(0), width = table.dim(1), n = ids.numel();
  CHECK_EQ(out.numel(), n * width);
  const float* src = table.data<float>();
  const int32_t* id = ids.data<int32_t>();
  float* dst = out.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    CHECK(id[i] >= 0 && id[i] < rows) << "token id " << id[i] << " outside [0, " << rows << ")";
    std::memcpy(dst + i * width, src + static_cast<int64_t>(id[i]) * width, width * sizeof(float));
  }
}

void CpuOps::linear(const Tensor& x, const Tensor& w, Tensor& y) {
  const int64_t n = w.dim(0), k = w.dim(1);
  CHECK_EQ(x.numel() % k, 0) << "linear: input " << shape_str(x.shape()) << " vs weight " << shape_str(w.shape());
  const int64_t m = x.numel() / k;
  CHECK_EQ(y.numel(), m * n) << "linear: output " << shape_str(y.shape());
  if (m == 0) return;
  const Tensor xs = read_f32(x);
  Tensor ys = f32_target(y, /*keep_values=*/false);
  cpu_sgemm(false, true, m, n, k, 1.0f, xs.data<float>(), k, w.data<float>(), k, 0.0f, ys.data<float>(), n);
  store_f32(ys, y);
}

void CpuOps::linear_add(const Tensor& x, const Tensor& w, Tensor& y) {
  // The product, then the addition: y is often the residual stream, whose values reach
  // ~3e4 in some models (SmolLM2), and sgemm with beta = 1 adds each k-block's partial
  // sum into y, rounding at that magnitude once per block (measured: the SmolLM2
  // gradient check's worst error up 40%). cuBLAS adds y once, in its epilogue.
  Tensor product = Tensor::empty(y.shape());
  linear(x, w, product);
  add_inplace(y, product);
}

void CpuOps::linear_backward_input(const Tensor& dy, const Tensor& w, Tensor& dx, bool accumulate) {
  const int64_t n = w.dim(0), k = w.dim(1);
  CHECK_EQ(dy.numel() % n, 0);
  const int64_t m = dy.numel() / n;
  CHECK_EQ(dx.numel(), m * k);
  if (m == 0) return;
  const Tensor dys = read_f32(dy);
  Tensor dxs = f32_target(dx, /*keep_values=*/accumulate);
  cpu_sgemm(false, false, m, k, n, 1.0f, dys.data<float>(), n, w.data<float>(), k, accumulate ? 1.0f : 0.0f,
            dxs.data<float>(), k);
  store_f32(dxs, dx);
}

void CpuOps::linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, bool accumulate) {
  const int64_t n = dw.dim(0), k = dw.dim(1);
  CHECK_EQ(dy.numel() % n, 0);
  const int64_t m = dy.numel() / n;
  CHECK_EQ(x.numel(), m * k);
  if (m == 0) {
    if (!accumulate) zero(dw);
    return;
  }
  cpu_sgemm(true, false, n, k, m, 1.0f, dy.data<float>(), n, x.data<float>(), k, accumulate ? 1.0f : 0.0f,
            dw.data<float>(), k);
}

}  // namespace xcomp
