// Row-wise and elementwise ops of the CPU backend.
#include <glog/logging.h>

#include <cmath>
#include <cstring>

#include "model/cpu/cpu_ops.h"

namespace xcomp {

void CpuOps::rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& y) {
  const int64_t h = w.numel();
  CHECK_EQ(x.numel() % h, 0);
  CHECK_EQ(y.numel(), x.numel());
  const int64_t rows = x.numel() / h;
  const float* xs = x.data<float>();
  const float* ws = w.data<float>();
  float* ys = y.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = xs + r * h;
    double sum = 0;
    for (int64_t i = 0; i < h; ++i) sum += static_cast<double>(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(sum / h + eps));
    float* yr = ys + r * h;
    for (int64_t i = 0; i < h; ++i) yr[i] = ws[i] * (xr[i] * inv);
  }
}

void CpuOps::rope(Tensor& x, const Tensor& positions, const Tensor& inv_freq) {
  CHECK_EQ(x.ndim(), 4);
  const int64_t b = x.dim(0), t = x.dim(1), heads = x.dim(2), d = x.dim(3), half = d / 2;
  CHECK_EQ(positions.numel(), b * t);
  CHECK_EQ(inv_freq.numel(), half);
  const int32_t* pos = positions.data<int32_t>();
  const float* freq = inv_freq.data<float>();
  float* xs = x.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t bt = 0; bt < b * t; ++bt) {
    const float p = static_cast<float>(pos[bt]);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = p * freq[i];  // float32, like transformers' inv_freq @ position_ids
      const float c = std::cos(angle), s = std::sin(angle);
      for (int64_t hh = 0; hh < heads; ++hh) {
        float* head = xs + (bt * heads + hh) * d;
        const float x1 = head[i], x2 = head[i + half];
        head[i] = x1 * c - x2 * s;
        head[i + half] = x2 * c + x1 * s;
      }
    }
  }
}

void CpuOps::swiglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  const int64_t n = gate.numel();
  CHECK_EQ(up.numel(), n);
  CHECK_EQ(out.numel(), n);
  const float* g = gate.data<float>();
  const float* u = up.data<float>();
  float* o = out.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void CpuOps::add_inplace(Tensor& y, const Tensor& x) {
  const int64_t n = y.numel();
  CHECK_EQ(x.numel(), n);
  float* ys = y.data<float>();
  const float* xs = x.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) ys[i] += xs[i];
}

void CpuOps::write_rows(const Tensor& src, Tensor& dst, int64_t offset) {
  CHECK(src.dtype() == dst.dtype());
  const int64_t b = dst.dim(0), capacity = dst.dim(1);
  const int64_t width = dst.numel() / (b * capacity);
  CHECK_EQ(src.numel() % (b * width), 0);
  const int64_t t = src.numel() / (b * width);
  CHECK(offset >= 0 && offset + t <= capacity) << "write_rows: " << t << " rows at " << offset << " of " << capacity;
  const size_t row_bytes = width * dtype_size(dst.dtype());
  const char* s = static_cast<const char*>(src.raw());
  char* d = static_cast<char*>(dst.raw());
  for (int64_t bi = 0; bi < b; ++bi)
    std::memcpy(d + (bi * capacity + offset) * row_bytes, s + bi * t * row_bytes, t * row_bytes);
}

}  // namespace xcomp
