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
#include "model/input_error.h"

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

// A run's config (its cuda: keys, CudaKernelChoices) decides over the variables; what it
// leaves empty the variables still decide; a bad choice names the key.
TEST(CudaBackendConfiguration, TheConfigsChoicesComeBeforeTheEnvironment) {
  ASSERT_GT(cuda_device_count(), 0) << "no CUDA device: the cuda_tests run only on a GPU machine (tools/gpu_check.sh)";
  CudaKernelChoices choices;
  choices.attention = "flash";
  choices.attention_backward = "flash_bf16";
  choices.gemm = "lt";
  choices.arena = "0.5";
  EXPECT_EQ(make_cuda_ops(0, CudaWeightStorage::kBf16, choices)->configuration(),
            "weights bf16, attention flash/flash_bf16, products lt, arena 0.5 GiB");

  ASSERT_EQ(setenv("XCOMP_CUDA_ATTENTION", "tiled", 1), 0);
  ASSERT_EQ(setenv("XCOMP_CUDA_GEMM", "lt_tuned", 1), 0);
  CudaKernelChoices attention_only;
  attention_only.attention = "gemm";
  attention_only.causal_block = 64;
  const std::string chosen = make_cuda_ops(0, CudaWeightStorage::kBf16, attention_only)->configuration();
  ASSERT_EQ(unsetenv("XCOMP_CUDA_ATTENTION"), 0);
  ASSERT_EQ(unsetenv("XCOMP_CUDA_GEMM"), 0);
  EXPECT_EQ(chosen, "weights bf16, attention gemm/gemm_causal (64-query blocks), products lt_tuned, caching allocator");

  CudaKernelChoices bad;
  bad.gemm = "cublasLt";
  try {
    make_cuda_ops(0, CudaWeightStorage::kBf16, bad);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("cuda.gemm 'cublasLt'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace xcomp
