// How far one compressor step is from another on the same batch (a rounding backend's
// from fp32's, the GPU's from the CPU's), and the statistics that judge precision over
// many batches. Used by the CPU's precision tests (tests/rounded_step_error.h) and the
// GPU's step check (tests/cuda/compressor_cuda_test.cc), so that their numbers compare.
//
// Why over many batches: on stories260K one batch's numbers are heavy-tailed. Over 32
// batches with the very same roundings (the default ones), the worst gradient tensor's
// largest difference, relative to its largest element, had medians of 0.056 (K/V) and
// 0.148 (embedding) but reached 0.48 and 1.1 on single batches; the whole gradient's
// norm error had medians of 0.024 and 0.054 and reached 0.18 and 0.6 (a gradient that
// nearly cancels). So precision is judged by medians, and a setting against another by
// the geometric mean of their per-batch ratios on the same batches; every batch must be
// finite.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "model/tensor_difference.h"
#include "tests/random_batch.h"
#include "trainer/timing_statistics.h"

namespace xcomp::test {

// The bound on the median relative loss error of a step with the GPU's roundings, on
// the GPU and in its CPU emulation (measured about 2e-4 in both modes there).
constexpr double kLossErrorBound = 1e-3;

struct StepError {
  double loss = 0;            // |loss - reference's| / |reference's|
  double gradient_norm = 0;   // ||gradients - reference's|| / ||reference's||, every tensor at once
  double worst_gradient = 0;  // the largest of relative_max_difference over the tensors
  std::string worst_name;
};

// The second model's step against the first's.
inline StepError step_error(StepOnTwoModels& r) {
  StepError e;
  e.loss = std::fabs(r.second_loss.sum - r.first_loss.sum) / std::fabs(r.first_loss.sum);
  e.gradient_norm = relative_norm_difference(r.second->gradient_buffer(), r.first->gradient_buffer());
  const auto a = r.first->parameters(), b = r.second->parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    const double err = relative_max_difference(*b[i].grad, *a[i].grad);
    if (err > e.worst_gradient) e.worst_gradient = err, e.worst_name = a[i].name;
  }
  return e;
}

inline bool finite(const StepError& e) { return std::isfinite(e.loss) && std::isfinite(e.gradient_norm); }

inline double geometric_mean(const std::vector<double>& v) {
  double logs = 0;
  for (double x : v) logs += std::log(x);
  return v.empty() ? NAN : std::exp(logs / static_cast<double>(v.size()));
}

// One field of each batch's errors, for median (trainer/timing_statistics.h). A NaN
// counts as infinite, so that it sorts (as large) and the median stays defined.
inline std::vector<double> values_of(const std::vector<StepError>& errors, double StepError::*field) {
  std::vector<double> v;
  for (const StepError& e : errors) v.push_back(std::isnan(e.*field) ? INFINITY : e.*field);
  return v;
}

// The batch whose worst tensor is worst.
inline StepError worst_of(const std::vector<StepError>& errors) {
  StepError worst;
  for (const StepError& e : errors)
    if (e.worst_gradient >= worst.worst_gradient) worst = e;
  return worst;
}

}  // namespace xcomp::test
