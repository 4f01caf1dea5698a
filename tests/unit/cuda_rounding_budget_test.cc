// The mixed-precision error budget of a training step, on the CPU: the compressor step
// on stories260K computed with the CUDA backend's roundings (tests/cuda_rounding_cpu_ops.h)
// against the same step in fp32 on the same bf16-rounded weights. The GPU's own check
// (tests/cuda/compressor_cuda_test.cc) allows 0.25 for the worst gradient tensor and
// measured 0.061 (K/V) and 0.121 (embedding) on an H200, about 1.25x what this emulation
// gave for the same code. So a change to where the model rounds (which tensors it writes
// in product_dtype, what it keeps for backward) shows its cost here first, without a GPU:
// the budget is the GPU's bound over that ratio, with room. As built: 0.057 (K/V) and
// 0.081 (embedding). Rounding gate and up before the activation gave 0.42 (embedding)
// and fails it. One batch's worst tensor is a noisy measure (0.03-0.29 over 24 batches),
// so the median of the whole gradient's norm error over 16 batches is held too.
#include <gtest/gtest.h>

#include <cstdio>
#include <vector>

#include "tests/cuda_rounding_cpu_ops.h"
#include "tests/rounded_step_error.h"

namespace xcomp {
namespace {

using test::StepError;

TEST(CudaRoundingBudget, StepWithTheGpusRoundingsStaysWithinBudget) {
  for (const CompressorMode mode : {CompressorMode::kKeyValue, CompressorMode::kEmbedding}) {
    test::CudaRoundingCpuOps rounding;
    const StepError e = test::expect_step_within_budget(rounding, mode, "with the GPU's roundings");
    // The roundings happen: a step equal to fp32's would mean the emulation rounds nothing.
    EXPECT_GT(e.worst_gradient, 1e-3);
  }
}

// The steadier measure (tests/rounded_step_error.h): the whole gradient's norm error, its
// median over kMeasuredBatches batches, within 1.5x what this emulation measured (0.027
// K/V, 0.045 embedding).
TEST(CudaRoundingBudget, MedianGradientNormErrorOverBatchesStaysWithinBudget) {
  for (const CompressorMode mode : {CompressorMode::kKeyValue, CompressorMode::kEmbedding}) {
    test::CudaRoundingCpuOps rounding;
    const std::vector<StepError> errors = test::rounded_step_errors(rounding, mode, test::kMeasuredBatches);
    const double median = test::median_gradient_norm(errors);
    std::printf("  %s: median gradient norm error over %d batches %.4f\n", test::mode_name(mode),
                test::kMeasuredBatches, median);
    EXPECT_LT(median, test::default_gradient_norm_budget(mode)) << test::mode_name(mode);
    EXPECT_GT(median, 1e-3) << "the emulation rounds nothing";
  }
}

}  // namespace
}  // namespace xcomp
