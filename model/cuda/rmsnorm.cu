#include "model/cuda/rmsnorm.h"

#include "model/cuda/cuda_backend.h"
#include "model/cuda/cuda_check.h"
#include "model/cuda/device_thread.cuh"
#include "model/cuda/rmsnorm_rows.h"

namespace xcomp::cuda {

namespace {

using rmsnorm_rows::kThreads;

__device__ void store(float* p, int64_t i, float v) { p[i] = v; }
__device__ void store(__nv_bfloat16* p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

// Where a row's values go: one output (float or bf16), or the same values into a float
// one and a bf16 one.
template <class Out> struct StoreTo {
  Out* y;
  __device__ void operator()(int64_t i, float v) const { store(y, i, v); }
};
struct StoreToBoth {
  float* y;
  __nv_bfloat16* y16;
  __device__ void operator()(int64_t i, float v) const {
    store(y, i, v);
    store(y16, i, v);
  }
};

// One block per row (rmsnorm_rows.h), in registers where a row fits them.
template <int kPerThread, class Store>
__global__ void __launch_bounds__(kThreads)
    rmsnorm_in_registers_kernel(const float* x, const float* w, float eps, int64_t width, Store out) {
  __shared__ double scratch[rmsnorm_rows::kScratch];
  rmsnorm_rows::forward_row_in_registers<kPerThread>(DeviceThread{}, x, w, eps, width, scratch, out);
}

template <class Store>
__global__ void __launch_bounds__(kThreads)
    rmsnorm_looped_kernel(const float* x, const float* w, float eps, int64_t width, Store out) {
  __shared__ double scratch[rmsnorm_rows::kScratch];
  rmsnorm_rows::forward_row_looped(DeviceThread{}, x, w, eps, width, scratch, out);
}

template <class Store>
void launch_rmsnorm(const float* x, const float* w, float eps, int64_t rows, int64_t width, Store y,
                    cudaStream_t stream) {
  if (rows == 0) return;
  CHECK_LT(rows, int64_t{1} << 31);
  const auto blocks = static_cast<unsigned>(rows);
  if (rmsnorm_rows::row_registers(width) == 0) {
    rmsnorm_looped_kernel<<<blocks, kThreads, 0, stream>>>(x, w, eps, width, y);
  } else {
    rmsnorm_rows::with_row_registers(width, [&](auto per_thread) {
      rmsnorm_in_registers_kernel<decltype(per_thread)::value><<<blocks, kThreads, 0, stream>>>(x, w, eps, width, y);
    });
  }
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

template <int kPerThread>
__global__ void __launch_bounds__(kThreads)
    rmsnorm_backward_in_registers_kernel(const float* dy, const float* x, const float* w, float eps, int64_t width,
                                         bool accumulate, float* dx) {
  __shared__ double scratch[rmsnorm_rows::kScratch];
  rmsnorm_rows::backward_row_in_registers<kPerThread>(DeviceThread{}, dy, x, w, eps, width, accumulate, dx, scratch);
}

__global__ void __launch_bounds__(kThreads)
    rmsnorm_backward_looped_kernel(const float* dy, const float* x, const float* w, float eps, int64_t width,
                                   bool accumulate, float* dx) {
  __shared__ double scratch[rmsnorm_rows::kScratch];
  rmsnorm_rows::backward_row_looped(DeviceThread{}, dy, x, w, eps, width, accumulate, dx, scratch);
}

}  // namespace

void rmsnorm_forward(const float* x, const float* w, float eps, int64_t rows, int64_t width, float* y,
                     cudaStream_t stream) {
  launch_rmsnorm(x, w, eps, rows, width, StoreTo<float>{y}, stream);
}

void rmsnorm_forward_bf16(const float* x, const float* w, float eps, int64_t rows, int64_t width, __nv_bfloat16* y,
                          cudaStream_t stream) {
  launch_rmsnorm(x, w, eps, rows, width, StoreTo<__nv_bfloat16>{y}, stream);
}

void rmsnorm_forward_f32_and_bf16(const float* x, const float* w, float eps, int64_t rows, int64_t width, float* y,
                                  __nv_bfloat16* y16, cudaStream_t stream) {
  launch_rmsnorm(x, w, eps, rows, width, StoreToBoth{y, y16}, stream);
}

void rmsnorm_backward(const float* dy, const float* x, const float* w, float eps, int64_t rows, int64_t width,
                      bool accumulate, float* dx, cudaStream_t stream) {
  if (rows == 0) return;
  CHECK_LT(rows, int64_t{1} << 31);
  const auto blocks = static_cast<unsigned>(rows);
  if (rmsnorm_rows::row_registers(width) == 0) {
    rmsnorm_backward_looped_kernel<<<blocks, kThreads, 0, stream>>>(dy, x, w, eps, width, accumulate, dx);
  } else {
    rmsnorm_rows::with_row_registers(width, [&](auto per_thread) {
      rmsnorm_backward_in_registers_kernel<decltype(per_thread)::value>
          <<<blocks, kThreads, 0, stream>>>(dy, x, w, eps, width, accumulate, dx);
    });
  }
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

void rmsnorm_forward_host(const float* x, const float* w, float eps, int64_t rows, int64_t width, float* y) {
  float *dx = nullptr, *dw = nullptr, *dy = nullptr;
  const size_t row_bytes = static_cast<size_t>(rows * width) * sizeof(float);
  XCOMP_CUDA_CHECK(cudaMalloc(&dx, row_bytes));
  XCOMP_CUDA_CHECK(cudaMalloc(&dy, row_bytes));
  XCOMP_CUDA_CHECK(cudaMalloc(&dw, width * sizeof(float)));
  XCOMP_CUDA_CHECK(cudaMemcpy(dx, x, row_bytes, cudaMemcpyHostToDevice));
  XCOMP_CUDA_CHECK(cudaMemcpy(dw, w, width * sizeof(float), cudaMemcpyHostToDevice));
  rmsnorm_forward(dx, dw, eps, rows, width, dy);
  XCOMP_CUDA_CHECK(cudaDeviceSynchronize());
  XCOMP_CUDA_CHECK(cudaMemcpy(y, dy, row_bytes, cudaMemcpyDeviceToHost));
  XCOMP_CUDA_CHECK(cudaFree(dx));
  XCOMP_CUDA_CHECK(cudaFree(dy));
  XCOMP_CUDA_CHECK(cudaFree(dw));
}

namespace {
void check_rmsnorm_args(const char* op, const Tensor& x, const Tensor& w, const Tensor& out) {
  require_dtype(op, "x", x, DType::F32);
  require_dtype(op, "w", w, DType::F32);
  CHECK(w.numel() > 0 && x.numel() % w.numel() == 0)
      << op << ": x " << shape_str(x.shape()) << " vs w " << shape_str(w.shape());
  CHECK_EQ(out.numel(), x.numel()) << op << ": output " << shape_str(out.shape());
}
}  // namespace

void CudaOps::rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& y) {
  require_on_device("rmsnorm", {&x, &w, &y});
  check_rmsnorm_args("rmsnorm", x, w, y);
  const int64_t width = w.numel();
  const auto* xs = static_cast<const float*>(x.raw());
  const auto* ws = static_cast<const float*>(w.raw());
  if (y.dtype() == DType::BF16) {
    rmsnorm_forward_bf16(xs, ws, eps, x.numel() / width, width, static_cast<__nv_bfloat16*>(y.raw()), stream_);
    return;
  }
  require_dtype("rmsnorm", "output (F32, or BF16 for a product)", y, DType::F32);
  rmsnorm_forward(xs, ws, eps, x.numel() / width, width, static_cast<float*>(y.raw()), stream_);
}

void CudaOps::rmsnorm_into_two(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& y2) {
  if (!(y.dtype() == DType::F32 && y2.dtype() == DType::BF16)) return Ops::rmsnorm_into_two(x, w, eps, y, y2);
  require_on_device("rmsnorm", {&x, &w, &y, &y2});
  check_rmsnorm_args("rmsnorm", x, w, y);
  check_rmsnorm_args("rmsnorm", x, w, y2);
  const int64_t width = w.numel();
  rmsnorm_forward_f32_and_bf16(static_cast<const float*>(x.raw()), static_cast<const float*>(w.raw()), eps,
                               x.numel() / width, width, static_cast<float*>(y.raw()),
                               static_cast<__nv_bfloat16*>(y2.raw()), stream_);
}

void CudaOps::rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, float eps, Tensor& dx,
                               bool accumulate) {
  require_on_device("rmsnorm_backward", {&dy, &x, &w, &dx});
  check_rmsnorm_args("rmsnorm_backward", x, w, dx);
  require_dtype("rmsnorm_backward", "dx", dx, DType::F32);
  require_dtype("rmsnorm_backward", "dy", dy, DType::F32);
  CHECK_EQ(dy.numel(), x.numel()) << "rmsnorm_backward: dy " << shape_str(dy.shape());
  const int64_t width = w.numel();
  cuda::rmsnorm_backward(static_cast<const float*>(dy.raw()), static_cast<const float*>(x.raw()),
                         static_cast<const float*>(w.raw()), eps, x.numel() / width, width, accumulate,
                         static_cast<float*>(dx.raw()), stream_);
}

}  // namespace xcomp::cuda
