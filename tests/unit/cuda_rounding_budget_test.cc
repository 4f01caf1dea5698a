// The mixed-precision error budget of a training step, on the CPU: the compressor step
// on stories260K computed with the CUDA backend's roundings (tests/cuda_rounding_cpu_ops.h)
// against the same step in fp32 on the same bf16-rounded weights, over 32 batches
// (tests/rounded_step_error.h). A change to where the model rounds (which tensors it
// writes in product_dtype, what it keeps for backward) shows its cost here first, without
// a GPU. As built, medians: gradient norm error 0.024 (K/V) and 0.054 (embedding), held
// to 1.5x that. Writing gate and up in bf16 (as now) changed the gradient error by
// 1.00x (K/V) and 1.02x (embedding), per batch on geometric mean; on the single batch
// the GPU check used to judge by, the worst tensor went from 0.081 to 0.42, which is why
// one batch no longer judges.
#include <gtest/gtest.h>

#include <vector>

#include "tests/cuda_rounding_cpu_ops.h"
#include "tests/rounded_step_error.h"

namespace xcomp {
namespace {

using test::StepError;

TEST(CudaRoundingBudget, StepWithTheGpusRoundingsStaysWithinBudget) {
  for (const CompressorMode mode : {CompressorMode::kKeyValue, CompressorMode::kEmbedding}) {
    test::CudaRoundingCpuOps rounding;
    const std::vector<StepError> errors = test::expect_within_default_budget(rounding, mode, "with the GPU's roundings");
    // The roundings happen: a step equal to fp32's would mean the emulation rounds nothing.
    EXPECT_GT(median(test::values_of(errors, &StepError::gradient_norm)), 1e-3) << test::mode_name(mode);
  }
}

}  // namespace
}  // namespace xcomp
