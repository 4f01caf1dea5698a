// Matrix products and table lookups of the CPU backend.
#include <cblas.h>
#include <glog/logging.h>

#include <cstring>

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
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0f, x.data<float>(), static_cast<int>(k), w.data<float>(),
              static_cast<int>(k), 0.0f, y.data<float>(), static_cast<int>(n));
}

void CpuOps::linear_backward_input(const Tensor& dy, const Tensor& w, Tensor& dx, bool accumulate) {
  const int64_t n = w.dim(0), k = w.dim(1);
  CHECK_EQ(dy.numel() % n, 0);
  const int64_t m = dy.numel() / n;
  CHECK_EQ(dx.numel(), m * k);
  if (m == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(k),
              static_cast<int>(n), 1.0f, dy.data<float>(), static_cast<int>(n), w.data<float>(),
              static_cast<int>(k), accumulate ? 1.0f : 0.0f, dx.data<float>(), static_cast<int>(k));
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
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(n), static_cast<int>(k),
              static_cast<int>(m), 1.0f, dy.data<float>(), static_cast<int>(n), x.data<float>(),
              static_cast<int>(k), accumulate ? 1.0f : 0.0f, dw.data<float>(), static_cast<int>(k));
}

}  // namespace xcomp
