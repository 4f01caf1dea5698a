// The error a backend's roundings give a whole compressor step, on the CPU: the step on
// stories260K with a rounding backend (tests/cuda_rounding_cpu_ops.h, or one that also
// rounds inside attention) against the same step in fp32 on the very weights the
// rounding backend holds, as the GPU's check (tests/cuda/compressor_cuda_test.cc)
// compares the CUDA backend with the CPU one. Used by the unit suite's budget tests and
// the slow one for the bf16 flash kernels.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "io/model_loader.h"
#include "model/compressor.h"
#include "model/cpu/cpu_ops.h"
#include "model/llama.h"
#include "tests/cuda/tensor_compare.h"
#include "tests/random_batch.h"
#include "tests/test_support.h"

namespace xcomp::test {

// Relative to each gradient tensor's largest element, as the GPU check measures: the
// GPU's bound (0.25) over the 1.25x the GPU's error measured above this emulation's, with
// room.
constexpr double kWorstGradientBudget = 0.15;
constexpr double kLossBudget = 1e-3;  // the GPU check's bound (measured 9e-5 there)

struct StepError {
  double loss = 0, worst_gradient = 0;
  std::string worst_name;
};

inline StepError rounded_step_error(CpuOps& rounding, CompressorMode mode) {
  const LoadedModel loaded = load_model(fixture("stories260K/stories260K.bin"), fixture("stories260K/tok512.model"));
  const LlamaModel rounded_model(loaded.config, load_weights(loaded), rounding);
  CpuOps cpu;
  const LlamaModel fp32_model(loaded.config, rounded_model.weights(), cpu);

  const StepOnTwoModels r = step_on_two_models(fp32_model, rounded_model, mode);
  const CompressorLoss &want = r.first_loss, &got = r.second_loss;

  StepError e;
  e.loss = std::fabs(got.sum - want.sum) / std::fabs(want.sum);
  const auto a = r.first->parameters(), b = r.second->parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    const double err = relative_max_error(*b[i].grad, *a[i].grad);
    if (err > e.worst_gradient) e.worst_gradient = err, e.worst_name = a[i].name;
  }
  return e;
}

// rounded_step_error for `mode`, printed as `what` and checked against the budgets; the
// error, for a caller's own checks.
inline StepError expect_step_within_budget(CpuOps& rounding, CompressorMode mode, const char* what) {
  const char* name = mode == CompressorMode::kKeyValue ? "kv" : "embedding";
  const StepError e = rounded_step_error(rounding, mode);
  std::printf("  %s %s: loss error %.2e, worst gradient error %.3f (%s)\n", name, what, e.loss, e.worst_gradient,
              e.worst_name.c_str());
  EXPECT_LT(e.loss, kLossBudget) << name << " " << what;
  EXPECT_LT(e.worst_gradient, kWorstGradientBudget) << name << " " << what << ": " << e.worst_name;
  return e;
}

}  // namespace xcomp::test
