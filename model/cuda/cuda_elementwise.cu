// Elementwise and row-copy ops of the CUDA backend: grid-stride loops, one element per
// thread per step (SwiGLU: eight, in 16-byte accesses; RoPE: a row a block), the same
// float arithmetic as the CPU backend (model/cpu/cpu_elementwise.cc), on F32 or (SwiGLU,
// Ops::product_dtype) BF16 storage.
#include <cuda_bf16.h>
#include <glog/logging.h>

#include <algorithm>
#include <initializer_list>
#include <type_traits>

#include "model/cuda/cuda_backend.h"
#include "model/cuda/cuda_check.h"
#include "model/cuda/float_elements.cuh"
#include "model/random.h"

namespace xcomp::cuda {

namespace {

constexpr int kThreads = 256;

#define XCOMP_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{gridDim.x} * blockDim.x)

// One block per (b, t) row of x [B, T, heads, 2 * half]: thread (i, y) rotates the
// (i, i + half) pair of heads y, y + blockDim.y, ... by sign * position * inv_freq[i],
// the angle in float32 as transformers computes it. The cosine and sine are computed
// once a row and pair and used for every head (32 query heads at LLaMA-3-8B's shape):
// a thread an element made the trigonometry and 64-bit index divisions, not memory, the
// kernel's cost. The same float arithmetic either way, so the same results.
__global__ void rope_kernel(float* x, const int32_t* positions, const float* inv_freq, int heads, int half,
                            float sign) {
  const int64_t row = blockIdx.x;
  float* row_x = x + row * heads * 2 * half;
  const float position = static_cast<float>(positions[row]);
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    const float angle = position * inv_freq[i];
    const float c = cosf(angle), s = sign * sinf(angle);
    for (int head = threadIdx.y; head < heads; head += blockDim.y) {
      float* h = row_x + head * 2 * half;
      const float x1 = h[i], x2 = h[i + half];
      h[i] = x1 * c - x2 * s;
      h[i + half] = x2 * c + x1 * s;
    }
  }
}

// rope_kernel over x [B, T, heads, head_dim] on `stream`, sign -1 for the backward pass.
void launch_rope(float* x, const int32_t* positions, const float* inv_freq, int64_t rows, int64_t heads,
                 int64_t half, float sign, cudaStream_t stream) {
  if (rows == 0 || heads == 0 || half == 0) return;
  CHECK_LE(rows, int64_t{0x7fffffff}) << "rope: " << rows << " rows";
  CHECK_LE(heads * 2 * half, int64_t{0x7fffffff}) << "rope: " << heads << " heads of " << 2 * half;
  // A row's pairs across x (coalesced), its heads across y: about kThreads a block.
  const int threads_x = static_cast<int>(std::min<int64_t>(half, kThreads));
  const int threads_y = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(heads, kThreads / threads_x)));
  rope_kernel<<<static_cast<unsigned>(rows), dim3(threads_x, threads_y), 0, stream>>>(
      x, positions, inv_freq, static_cast<int>(heads), static_cast<int>(half), sign);
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

// The MLP's tensors are F32 or BF16 (Ops::product_dtype): computed in fp32 either way,
// stored rounded to nearest even (float_elements.cuh).
__device__ float swiglu_value(float g, float u) { return g / (1.0f + expf(-g)) * u; }

// d swiglu / d gate and d up at one element, given d out.
__device__ void swiglu_gradients(float d, float g, float u, float& gate_grad, float& up_grad) {
  const float sig = 1.0f / (1.0f + expf(-g));
  up_grad = d * g * sig;
  gate_grad = d * u * sig * (1.0f + g * (1.0f - sig));
}

template <class In, class Out>
__global__ void swiglu_kernel(const In* gate, const In* up, int64_t n, Out* out) {
  XCOMP_GRID_STRIDE(i, n) store_element(out, i, swiglu_value(load_element(gate, i), load_element(up, i)));
}

template <class Grad, class In, class Out>
__global__ void swiglu_backward_kernel(const Grad* dout, const In* gate, const In* up, int64_t n, Out* dgate,
                                       Out* dup) {
  XCOMP_GRID_STRIDE(i, n) {
    float gate_grad, up_grad;
    swiglu_gradients(load_element(dout, i), load_element(gate, i), load_element(up, i), gate_grad, up_grad);
    store_element(dup, i, up_grad);  // both read before either is written: the outputs may alias the inputs
    store_element(dgate, i, gate_grad);
  }
}

// The kernels above over packs of eight elements (packs = n / 8): the same arithmetic
// for each element, so the same results.
template <class In, class Out>
__global__ void swiglu_packed_kernel(const In* gate, const In* up, int64_t packs, Out* out) {
  XCOMP_GRID_STRIDE(pack, packs) {
    const int64_t i = pack * kPack;
    float g[kPack], u[kPack], y[kPack];
    load_pack(gate, i, g);
    load_pack(up, i, u);
    for (int k = 0; k < kPack; ++k) y[k] = swiglu_value(g[k], u[k]);
    store_pack(out, i, y);
  }
}

template <class Grad, class In, class Out>
__global__ void swiglu_backward_packed_kernel(const Grad* dout, const In* gate, const In* up, int64_t packs,
                                              Out* dgate, Out* dup) {
  XCOMP_GRID_STRIDE(pack, packs) {
    const int64_t i = pack * kPack;
    float d[kPack], g[kPack], u[kPack], gate_grad[kPack], up_grad[kPack];
    load_pack(dout, i, d);
    load_pack(gate, i, g);
    load_pack(up, i, u);
    for (int k = 0; k < kPack; ++k) swiglu_gradients(d[k], g[k], u[k], gate_grad[k], up_grad[k]);
    store_pack(dup, i, up_grad);  // every input read first: the outputs may alias them
    store_pack(dgate, i, gate_grad);
  }
}

__global__ void add_scaled_kernel(float* y, const float* x, float alpha, int64_t n) {
  XCOMP_GRID_STRIDE(i, n) y[i] += alpha * x[i];
}

__global__ void add_kernel(float* y, const float* x, int64_t n) {
  XCOMP_GRID_STRIDE(i, n) y[i] += x[i];
}

// The mask is the CPU's: the same counter-based draw in fp64 for element first_element + i.
__global__ void dropout_kernel(const float* x, float p, float scale, uint64_t seed, uint64_t stream,
                               uint64_t first_element, int64_t n, float* out) {
  XCOMP_GRID_STRIDE(i, n) {
    const bool keep = counter_random_uniform(seed, RandomPurpose::kLoraDropout, stream,
                                             first_element + static_cast<uint64_t>(i)) >= p;
    out[i] = keep ? x[i] * scale : 0.0f;
  }
}

#undef XCOMP_GRID_STRIDE

void check_same_count(const char* op, const Tensor& a, const Tensor& b) {
  CHECK_EQ(a.numel(), b.numel()) << op << ": " << shape_str(a.shape()) << " vs " << shape_str(b.shape());
}

void require_activation_dtype(const char* op, const char* what, const Tensor& t) {
  CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16)
      << op << ": " << what << " is " << dtype_name(t.dtype()) << ", expected F32 or BF16";
}

// Calls f with a null pointer of each tensor's element type, in order (F32: float, BF16:
// __nv_bfloat16), so one kernel template serves every mix of the two.
template <class F>
void with_element_types(F&& f) {
  f();
}
template <class F, class... Rest>
void with_element_types(F&& f, const Tensor& first, const Rest&... rest) {
  const auto bind = [&](auto* type) { with_element_types([&](auto*... types) { f(type, types...); }, rest...); };
  if (first.dtype() == DType::BF16)
    bind(static_cast<__nv_bfloat16*>(nullptr));
  else
    bind(static_cast<float*>(nullptr));
}

template <class P>
using Element = std::remove_pointer_t<P>;

}  // namespace

void CudaOps::rope(Tensor& x, const Tensor& positions, const Tensor& inv_freq) {
  // The backward pass is the same rotation by the negative angle.
  const char* op = "rope";
  require_on_device(op, {&x, &positions, &inv_freq});
  require_dtype(op, "x", x, DType::F32);
  require_dtype(op, "positions", positions, DType::I32);
  require_dtype(op, "inv_freq", inv_freq, DType::F32);
  CHECK_EQ(x.ndim(), 4) << op << ": x " << shape_str(x.shape());
  const int64_t b = x.dim(0), t = x.dim(1), heads = x.dim(2), d = x.dim(3), half = d / 2;
  CHECK_EQ(d % 2, 0) << op << ": odd head_dim " << d;
  CHECK_EQ(positions.numel(), b * t) << op << ": positions " << shape_str(positions.shape());
  CHECK_EQ(inv_freq.numel(), half) << op << ": inv_freq " << shape_str(inv_freq.shape());
  launch_rope(static_cast<float*>(x.raw()), static_cast<const int32_t*>(positions.raw()),
              static_cast<const float*>(inv_freq.raw()), b * t, heads, half, 1.0f, stream_);
}

void CudaOps::rope_backward(Tensor& dx, const Tensor& positions, const Tensor& inv_freq) {
  const char* op = "rope_backward";
  require_on_device(op, {&dx, &positions, &inv_freq});
  require_dtype(op, "dx", dx, DType::F32);
  require_dtype(op, "positions", positions, DType::I32);
  require_dtype(op, "inv_freq", inv_freq, DType::F32);
  CHECK_EQ(dx.ndim(), 4) << op << ": dx " << shape_str(dx.shape());
  const int64_t b = dx.dim(0), t = dx.dim(1), heads = dx.dim(2), d = dx.dim(3), half = d / 2;
  CHECK_EQ(d % 2, 0) << op << ": odd head_dim " << d;
  CHECK_EQ(positions.numel(), b * t) << op << ": positions " << shape_str(positions.shape());
  CHECK_EQ(inv_freq.numel(), half) << op << ": inv_freq " << shape_str(inv_freq.shape());
  launch_rope(static_cast<float*>(dx.raw()), static_cast<const int32_t*>(positions.raw()),
              static_cast<const float*>(inv_freq.raw()), b * t, heads, half, -1.0f, stream_);
}

void CudaOps::swiglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  const char* op = "swiglu";
  require_on_device(op, {&gate, &up, &out});
  require_activation_dtype(op, "gate", gate);
  CHECK(up.dtype() == gate.dtype()) << op << ": up is " << dtype_name(up.dtype()) << ", gate "
                                    << dtype_name(gate.dtype());
  require_activation_dtype(op, "out", out);
  check_same_count(op, gate, up);
  check_same_count(op, gate, out);
  const int64_t n = gate.numel();
  if (n == 0) return;
  with_element_types(
      [&](auto* in, auto* o) {
        using In = Element<decltype(in)>;
        using Out = Element<decltype(o)>;
        const In* g = static_cast<const In*>(gate.raw());
        const In* u = static_cast<const In*>(up.raw());
        Out* y = static_cast<Out*>(out.raw());
        // Packs of eight where the tensors allow them, one element a thread for the rest.
        const int64_t packed = packed_elements(n, {g, u, y});
        if (packed > 0)
          swiglu_packed_kernel<<<elementwise_blocks(packed / kPack, kThreads), kThreads, 0, stream_>>>(
              g, u, packed / kPack, y);
        if (packed < n)
          swiglu_kernel<<<elementwise_blocks(n - packed, kThreads), kThreads, 0, stream_>>>(g + packed, u + packed,
                                                                                          n - packed, y + packed);
      },
      gate, out);
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

void CudaOps::swiglu_backward(const Tensor& dout, const Tensor& gate, const Tensor& up, Tensor& dgate, Tensor& dup) {
  const char* op = "swiglu_backward";
  require_on_device(op, {&dout, &gate, &up, &dgate, &dup});
  for (const Tensor* t : std::initializer_list<const Tensor*>{&dout, &gate, &up, &dgate, &dup}) {
    require_activation_dtype(op, "every argument", *t);
    check_same_count(op, gate, *t);
  }
  CHECK(up.dtype() == gate.dtype() && dup.dtype() == dgate.dtype())
      << op << ": gate and up (" << dtype_name(gate.dtype()) << ", " << dtype_name(up.dtype())
      << ") and dgate and dup (" << dtype_name(dgate.dtype()) << ", " << dtype_name(dup.dtype())
      << ") must be pairs of one dtype";
  const int64_t n = gate.numel();
  if (n == 0) return;
  with_element_types(
      [&](auto* grad, auto* in, auto* o) {
        using Grad = Element<decltype(grad)>;
        using In = Element<decltype(in)>;
        using Out = Element<decltype(o)>;
        const Grad* d = static_cast<const Grad*>(dout.raw());
        const In* g = static_cast<const In*>(gate.raw());
        const In* u = static_cast<const In*>(up.raw());
        Out* dg = static_cast<Out*>(dgate.raw());
        Out* du = static_cast<Out*>(dup.raw());
        const int64_t packed = packed_elements(n, {d, g, u, dg, du});
        if (packed > 0)
          swiglu_backward_packed_kernel<<<elementwise_blocks(packed / kPack, kThreads), kThreads, 0, stream_>>>(
              d, g, u, packed / kPack, dg, du);
        if (packed < n)
          swiglu_backward_kernel<<<elementwise_blocks(n - packed, kThreads), kThreads, 0, stream_>>>(
              d + packed, g + packed, u + packed, n - packed, dg + packed, du + packed);
      },
      dout, gate, dgate);
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

void CudaOps::add_inplace(Tensor& y, const Tensor& x) {
  const char* op = "add_inplace";
  require_on_device(op, {&y, &x});
  require_dtype(op, "y", y, DType::F32);
  require_dtype(op, "x", x, DType::F32);
  check_same_count(op, y, x);
  const int64_t n = y.numel();
  if (n == 0) return;
  add_kernel<<<elementwise_blocks(n, kThreads), kThreads, 0, stream_>>>(static_cast<float*>(y.raw()),
                                                                        static_cast<const float*>(x.raw()), n);
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

void CudaOps::add_scaled(Tensor& y, const Tensor& x, float alpha) {
  const char* op = "add_scaled";
  require_on_device(op, {&y, &x});
  require_dtype(op, "y", y, DType::F32);
  require_dtype(op, "x", x, DType::F32);
  check_same_count(op, y, x);
  const int64_t n = y.numel();
  if (n == 0) return;
  add_scaled_kernel<<<elementwise_blocks(n, kThreads), kThreads, 0, stream_>>>(
      static_cast<float*>(y.raw()), static_cast<const float*>(x.raw()), alpha, n);
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

void CudaOps::zero(Tensor& y) {
  require_on_device("zero", {&y});
  if (y.nbytes() > 0) XCOMP_CUDA_CHECK(cudaMemsetAsync(y.raw(), 0, y.nbytes(), stream_));
}

void CudaOps::write_rows(const Tensor& src, Tensor& dst, int64_t offset) {
  const char* op = "write_rows";
  require_on_device(op, {&src, &dst});
  CHECK(src.dtype() == dst.dtype()) << op << ": " << dtype_name(src.dtype()) << " into " << dtype_name(dst.dtype());
  CHECK_GE(dst.ndim(), 2) << op << ": dst " << shape_str(dst.shape());
  const int64_t b = dst.dim(0), capacity = dst.dim(1);
  if (b * capacity == 0) return;
  const int64_t width = dst.numel() / (b * capacity);
  CHECK(width > 0 && src.numel() % (b * width) == 0)
      << op << ": src " << shape_str(src.shape()) << " vs dst " << shape_str(dst.shape());
  const int64_t t = src.numel() / (b * width);
  CHECK(offset >= 0 && offset + t <= capacity) << op << ": " << t << " rows at " << offset << " of " << capacity;
  if (t == 0) return;
  const size_t row_bytes = width * dtype_size(dst.dtype());
  // b blocks of t contiguous rows each: a 2-D copy with the two tensors' pitches.
  XCOMP_CUDA_CHECK(cudaMemcpy2DAsync(static_cast<char*>(dst.raw()) + offset * row_bytes, capacity * row_bytes,
                                     src.raw(), t * row_bytes, t * row_bytes, b, cudaMemcpyDeviceToDevice, stream_));
}

void CudaOps::read_rows(const Tensor& src, int64_t offset, Tensor& dst) {
  const char* op = "read_rows";
  require_on_device(op, {&src, &dst});
  CHECK(src.dtype() == dst.dtype()) << op << ": " << dtype_name(src.dtype()) << " into " << dtype_name(dst.dtype());
  CHECK_GE(src.ndim(), 2) << op << ": src " << shape_str(src.shape());
  const int64_t b = src.dim(0), capacity = src.dim(1);
  if (b * capacity == 0) return;
  const int64_t width = src.numel() / (b * capacity);
  CHECK(width > 0 && dst.numel() % (b * width) == 0)
      << op << ": src " << shape_str(src.shape()) << " vs dst " << shape_str(dst.shape());
  const int64_t t = dst.numel() / (b * width);
  CHECK(offset >= 0 && offset + t <= capacity) << op << ": " << t << " rows at " << offset << " of " << capacity;
  if (t == 0) return;
  const size_t row_bytes = width * dtype_size(src.dtype());
  XCOMP_CUDA_CHECK(cudaMemcpy2DAsync(dst.raw(), t * row_bytes, static_cast<const char*>(src.raw()) + offset * row_bytes,
                                     capacity * row_bytes, t * row_bytes, b, cudaMemcpyDeviceToDevice, stream_));
}

void CudaOps::dropout(const Tensor& x, float p, uint64_t seed, uint64_t stream, uint64_t first_element,
                      Tensor& out) {
  const char* op = "dropout";
  require_on_device(op, {&x, &out});
  require_dtype(op, "x", x, DType::F32);
  require_dtype(op, "out", out, DType::F32);
  check_same_count(op, x, out);
  CHECK(p >= 0.0f && p < 1.0f) << op << ": probability " << p;
  const int64_t n = x.numel();
  if (n == 0) return;
  if (p == 0.0f) {
    if (out.raw() != x.raw())
      XCOMP_CUDA_CHECK(cudaMemcpyAsync(out.raw(), x.raw(), x.nbytes(), cudaMemcpyDeviceToDevice, stream_));
    return;
  }
  const float scale = 1.0f / (1.0f - p);
  dropout_kernel<<<elementwise_blocks(n, kThreads), kThreads, 0, stream_>>>(
      static_cast<const float*>(x.raw()), p, scale, seed, stream, first_element, n, static_cast<float*>(out.raw()));
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace xcomp::cuda
