// The CUDA RMSNorm against the CPU backend's. Needs a GPU (ctest label "cuda").
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "model/cpu/cpu_ops.h"
#include "model/cuda/cuda_ops.h"
#include "model/cuda/rmsnorm.h"

namespace xcomp {
namespace {

TEST(CudaRmsnorm, MatchesCpuBackend) {
  ASSERT_GT(cuda_device_count(), 0) << "no CUDA device: the cuda_tests run only on a GPU machine (tools/gpu_check.sh)";
  const int64_t rows = 37, width = 576;
  Tensor x = Tensor::empty({rows, width}), w = Tensor::empty({width}), y_cpu = Tensor::empty({rows, width});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = std::sin(0.37f * i) * (1 + i % 7);
  for (int64_t i = 0; i < width; ++i) w.data<float>()[i] = 0.5f + 0.01f * (i % 13);
  CpuOps cpu;
  cpu.rmsnorm(x, w, 1e-5f, y_cpu);
  std::vector<float> y_gpu(x.numel());
  cuda::rmsnorm_forward_host(x.data<float>(), w.data<float>(), 1e-5f, rows, width, y_gpu.data());
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_NEAR(y_gpu[i], y_cpu.data<float>()[i], 1e-5f * (1 + std::fabs(y_cpu.data<float>()[i]))) << i;
}

}  // namespace
}  // namespace xcomp
