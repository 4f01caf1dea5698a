// What the CUDA backend says of how it computes (Ops::configuration): the kernels and
// allocator the XCOMP_CUDA_* variables chose, which training logs and evaluation reports
// record. Needs a GPU (ctest label "cuda").
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/cuda/cuda_ops.h"

namespace xcomp {
namespace {

// The backend made with these variables set (and unset again after).
std::unique_ptr<Ops> backend_with(const std::vector<std::pair<const char*, const char*>>& variables,
                                  CudaWeightStorage weights = CudaWeightStorage::kBf16) {
  for (const auto& [name, value] : variables) EXPECT_EQ(setenv(name, value, 1), 0);
  std::unique_ptr<Ops> ops = make_cuda_ops(0, weights);
  for (const auto& [name, value] : variables) EXPECT_EQ(unsetenv(name), 0);
  return ops;
}

TEST(CudaBackendConfiguration, NamesTheDefaults) {
  ASSERT_GT(cuda_device_count(), 0) << "no CUDA device: the cuda_tests run only on a GPU machine (tools/gpu_check.sh)";
  EXPECT_EQ(backend_with({})->configuration(),
            "weights bf16, attention gemm_causal/gemm_causal (128-query blocks), products cublas, caching allocator");
  EXPECT_EQ(backend_with({}, CudaWeightStorage::kF32)->configuration(),
            "weights f32, attention gemm_causal/gemm_causal (128-query blocks), products cublas, caching allocator");
}

TEST(CudaBackendConfiguration, NamesWhatTheEnvironmentChose) {
  ASSERT_GT(cuda_device_count(), 0) << "no CUDA device: the cuda_tests run only on a GPU machine (tools/gpu_check.sh)";
  EXPECT_EQ(backend_with({{"XCOMP_CUDA_ATTENTION", "flash"},
                          {"XCOMP_CUDA_ATTENTION_BACKWARD", "flash_bf16"},
                          {"XCOMP_CUDA_GEMM", "lt_tuned"},
                          {"XCOMP_CUDA_ARENA", "0.5"}})
                ->configuration(),
            "weights bf16, attention flash/flash_bf16, products lt_tuned, arena 0.5 GiB");
  EXPECT_EQ(backend_with({{"XCOMP_CUDA_ATTENTION", "gemm_causal"}, {"XCOMP_CUDA_CAUSAL_BLOCK", "64"}})->configuration(),
            "weights bf16, attention gemm_causal/gemm_causal (64-query blocks), products cublas, caching allocator");
  // fp32 weights: every product true fp32 on cublasGemmEx, whatever XCOMP_CUDA_GEMM says.
  EXPECT_EQ(backend_with({{"XCOMP_CUDA_GEMM", "lt"}}, CudaWeightStorage::kF32)->configuration(),
            "weights f32, attention gemm_causal/gemm_causal (128-query blocks), products cublas, caching allocator");
}

}  // namespace
}  // namespace xcomp
