// Row-wise and elementwise ops of the CPU backend.
#include <glog/logging.h>

#include <cmath>
#include <cstring>

#include "model/cpu/bf16_activations.h"
#include "model/cpu/cpu_exp.h"
#include "model/cpu/cpu_ops.h"
#include "model/cpu/parallel_work.h"
#include "model/random.h"

namespace xcomp {

void CpuOps::rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& y) {
  const int64_t h = w.numel();
  CHECK_EQ(x.numel() % h, 0);
  CHECK_EQ(y.numel(), x.numel());
  const int64_t rows = x.numel() / h;
  Tensor y32 = f32_target(y, /*keep_values=*/false);  // y may be BF16 (product_dtype)
  const float* xs = x.data<float>();
  const float* ws = w.data<float>();
  float* ys = y32.data<float>();
#pragma omp parallel for schedule(static) if (parallel : worth_parallel(rows * h))
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = xs + r * h;
    double sum = 0;
    for (int64_t i = 0; i < h; ++i) sum += static_cast<double>(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(sum / h + eps));
    float* yr = ys + r * h;
    for (int64_t i = 0; i < h; ++i) yr[i] = ws[i] * (xr[i] * inv);
  }
  store_f32(y32, y);
}

namespace {
// Rotates each (i, i + head_dim/2) pair of every head by sign * position * inv_freq[i].
void rotate_halves(Tensor& x, const Tensor& positions, const Tensor& inv_freq, float sign) {
  CHECK_EQ(x.ndim(), 4);
  const int64_t b = x.dim(0), t = x.dim(1), heads = x.dim(2), d = x.dim(3), half = d / 2;
  CHECK_EQ(positions.numel(), b * t);
  CHECK_EQ(inv_freq.numel(), half);
  const int32_t* pos = positions.data<int32_t>();
  const float* freq = inv_freq.data<float>();
  float* xs = x.data<float>();
#pragma omp parallel for schedule(static) if (parallel : worth_parallel(b * t * heads * d))
  for (int64_t bt = 0; bt < b * t; ++bt) {
    const float p = static_cast<float>(pos[bt]);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = p * freq[i];  // float32, like transformers' inv_freq @ position_ids
      const float c = std::cos(angle), s = sign * std::sin(angle);
      for (int64_t hh = 0; hh < heads; ++hh) {
        float* head = xs + (bt * heads + hh) * d;
        const float x1 = head[i], x2 = head[i + half];
        head[i] = x1 * c - x2 * s;
        head[i + half] = x2 * c + x1 * s;
      }
    }
  }
}
}  // namespace

void CpuOps::rope(Tensor& x, const Tensor& positions, const Tensor& inv_freq) {
  rotate_halves(x, positions, inv_freq, 1.0f);
}

void CpuOps::rope_backward(Tensor& dx, const Tensor& positions, const Tensor& inv_freq) {
  rotate_halves(dx, positions, inv_freq, -1.0f);
}

void CpuOps::rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, float eps, Tensor& dx,
                              bool accumulate) {
  const int64_t h = w.numel();
  CHECK_EQ(x.numel() % h, 0);
  CHECK_EQ(dy.numel(), x.numel());
  CHECK_EQ(dx.numel(), x.numel());
  const int64_t rows = x.numel() / h;
  const float* xs = x.data<float>();
  const float* ws = w.data<float>();
  const float* dys = dy.data<float>();
  float* dxs = dx.data<float>();
#pragma omp parallel for schedule(static) if (parallel : worth_parallel(rows * h))
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = xs + r * h;
    const float* dyr = dys + r * h;
    double sum_sq = 0, dot = 0;
    for (int64_t i = 0; i < h; ++i) {
      sum_sq += static_cast<double>(xr[i]) * xr[i];
      dot += static_cast<double>(dyr[i]) * ws[i] * xr[i];
    }
    // y = w * x * inv with inv = (mean(x^2) + eps)^(-1/2):
    // dx = inv * w * dy - inv^3 * x * dot(dy * w, x) / h.
    const double inv = 1.0 / std::sqrt(sum_sq / h + eps);
    const float a = static_cast<float>(inv);
    const float b = static_cast<float>(inv * inv * inv * dot / h);
    float* dxr = dxs + r * h;
    for (int64_t i = 0; i < h; ++i) {
      const float g = a * ws[i] * dyr[i] - b * xr[i];
      dxr[i] = accumulate ? dxr[i] + g : g;
    }
  }
}

void CpuOps::swiglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  const int64_t n = gate.numel();
  CHECK_EQ(up.numel(), n);
  CHECK_EQ(out.numel(), n);
  const Tensor gate32 = read_f32(gate), up32 = read_f32(up);  // any of them may be BF16
  Tensor out32 = f32_target(out, /*keep_values=*/false);
  const float* g = gate32.data<float>();
  const float* u = up32.data<float>();
  float* o = out32.data<float>();
#pragma omp parallel for simd schedule(static) if (parallel : worth_parallel(n))
  for (int64_t i = 0; i < n; ++i) o[i] = g[i] / (1.0f + vector_exp(-g[i])) * u[i];
  store_f32(out32, out);
}

void CpuOps::swiglu_backward(const Tensor& dout, const Tensor& gate, const Tensor& up, Tensor& dgate, Tensor& dup) {
  const int64_t n = gate.numel();
  CHECK(dout.numel() == n && up.numel() == n && dgate.numel() == n && dup.numel() == n);
  // Any of them may be BF16. Converted inputs are copies, so an output aliasing an input
  // still reads the input's values.
  const Tensor dout32 = read_f32(dout), gate32 = read_f32(gate), up32 = read_f32(up);
  Tensor dgate32 = f32_target(dgate, /*keep_values=*/false), dup32 = f32_target(dup, /*keep_values=*/false);
  const float* d = dout32.data<float>();
  const float* g = gate32.data<float>();
  const float* u = up32.data<float>();
  float* dg = dgate32.data<float>();
  float* du = dup32.data<float>();
#pragma omp parallel for simd schedule(static) if (parallel : worth_parallel(n))
  for (int64_t i = 0; i < n; ++i) {
    const float sig = 1.0f / (1.0f + vector_exp(-g[i]));
    const float up_grad = d[i] * g[i] * sig;
    const float gate_grad = d[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
    du[i] = up_grad;  // both read before either is written: the outputs may alias the inputs
    dg[i] = gate_grad;
  }
  store_f32(dgate32, dgate);
  store_f32(dup32, dup);
}

void CpuOps::add_inplace(Tensor& y, const Tensor& x) {
  const int64_t n = y.numel();
  CHECK_EQ(x.numel(), n);
  float* ys = y.data<float>();
  const float* xs = x.data<float>();
#pragma omp parallel for schedule(static) if (parallel : worth_parallel(n))
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

void CpuOps::read_rows(const Tensor& src, int64_t offset, Tensor& dst) {
  CHECK(src.dtype() == dst.dtype());
  const int64_t b = src.dim(0), capacity = src.dim(1);
  const int64_t width = src.numel() / (b * capacity);
  CHECK_EQ(dst.numel() % (b * width), 0);
  const int64_t t = dst.numel() / (b * width);
  CHECK(offset >= 0 && offset + t <= capacity) << "read_rows: " << t << " rows at " << offset << " of " << capacity;
  const size_t row_bytes = width * dtype_size(src.dtype());
  const char* s = static_cast<const char*>(src.raw());
  char* d = static_cast<char*>(dst.raw());
  for (int64_t bi = 0; bi < b; ++bi)
    std::memcpy(d + bi * t * row_bytes, s + (bi * capacity + offset) * row_bytes, t * row_bytes);
}

void CpuOps::add_scaled(Tensor& y, const Tensor& x, float alpha) {
  const int64_t n = y.numel();
  CHECK_EQ(x.numel(), n);
  float* ys = y.data<float>();
  const float* xs = x.data<float>();
#pragma omp parallel for schedule(static) if (parallel : worth_parallel(n))
  for (int64_t i = 0; i < n; ++i) ys[i] += alpha * xs[i];
}

void CpuOps::zero(Tensor& y) { std::memset(y.raw(), 0, y.nbytes()); }

void CpuOps::dropout(const Tensor& x, float p, uint64_t seed, uint64_t stream, uint64_t first_element,
                     Tensor& out) {
  const int64_t n = x.numel();
  CHECK_EQ(out.numel(), n);
  CHECK(p >= 0.0f && p < 1.0f) << "dropout probability " << p;
  const float* xs = x.data<float>();
  float* o = out.data<float>();
  if (p == 0.0f) {
    if (o != xs) std::memcpy(o, xs, n * sizeof(float));
    return;
  }
  const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (parallel : worth_parallel(n))
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = counter_random_uniform(seed, RandomPurpose::kLoraDropout, stream,
                                             first_element + static_cast<uint64_t>(i)) >= p;
    o[i] = keep ? xs[i] * scale : 0.0f;
  }
}

}  // namespace xcomp
