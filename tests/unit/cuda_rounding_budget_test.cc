// The mixed-precision error budget of a training step, on the CPU: the compressor step
// on stories260K computed with the CUDA backend's roundings (tests/cuda_rounding_cpu_ops.h)
// against the same step in fp32 on the same bf16-rounded weights. The GPU's own check
// (tests/cuda/compressor_cuda_test.cc) allows 0.25 for the worst gradient tensor and
// measured 0.061 (K/V) and 0.121 (embedding) on an H200, about 1.25x what this emulation
// gave for the same code. So a change to where the model rounds (which tensors it writes
// in product_dtype, what it keeps for backward) shows its cost here first, without a GPU:
// the budget is the GPU's bound over that ratio, with room. As built: 0.057 (K/V) and
// 0.081 (embedding). Rounding gate and up before the activation gave 0.42 (embedding)
// and fails it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "io/model_loader.h"
#include "model/compressor.h"
#include "model/cpu/cpu_ops.h"
#include "model/llama.h"
#include "tests/cuda/tensor_compare.h"
#include "tests/cuda_rounding_cpu_ops.h"
#include "tests/random_batch.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

// Relative to each gradient tensor's largest element, as the GPU check measures.
constexpr double kWorstGradientBudget = 0.15;
constexpr double kLossBudget = 1e-3;  // the GPU check's bound (measured 9e-5 there)

struct StepError {
  double loss = 0, worst_gradient = 0;
  std::string worst_name;
};

StepError rounded_step_error(CompressorMode mode) {
  const LoadedModel loaded =
      load_model(test::fixture("stories260K/stories260K.bin"), test::fixture("stories260K/tok512.model"));
  test::CudaRoundingCpuOps rounding;
  const LlamaModel rounded_model(loaded.config, load_weights(loaded), rounding);
  // The fp32 side on the very weights the rounding backend holds (bf16 values).
  CpuOps cpu;
  const LlamaModel fp32_model(loaded.config, rounded_model.weights(), cpu);

  const test::StepOnTwoModels r = test::step_on_two_models(fp32_model, rounded_model, mode);  // the GPU check's
  const CompressorLoss &want = r.first_loss, &got = r.second_loss;

  StepError e;
  e.loss = std::fabs(got.sum - want.sum) / std::fabs(want.sum);
  const auto a = r.first->parameters(), b = r.second->parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    const double err = test::relative_max_error(*b[i].grad, *a[i].grad);
    if (err > e.worst_gradient) e.worst_gradient = err, e.worst_name = a[i].name;
  }
  return e;
}

TEST(CudaRoundingBudget, StepWithTheGpusRoundingsStaysWithinBudget) {
  for (const CompressorMode mode : {CompressorMode::kKeyValue, CompressorMode::kEmbedding}) {
    const char* name = mode == CompressorMode::kKeyValue ? "kv" : "embedding";
    SCOPED_TRACE(name);
    const StepError e = rounded_step_error(mode);
    std::printf("  %s: loss error %.2e, worst gradient error %.3f (%s)\n", name, e.loss, e.worst_gradient,
                e.worst_name.c_str());
    EXPECT_LT(e.loss, kLossBudget);
    EXPECT_LT(e.worst_gradient, kWorstGradientBudget) << e.worst_name;
    // The roundings happen: a step equal to fp32's would mean the emulation rounds nothing.
    EXPECT_GT(e.worst_gradient, 1e-3);
  }
}

}  // namespace
}  // namespace xcomp
