#include "trainer/grad_clip.h"

#include <glog/logging.h>

#include <cmath>

namespace xcomp {

double global_grad_norm(Ops& ops, const std::vector<Tensor>& gradients) {
  double total = 0.0;
  for (const double sum : ops.sums_of_squares(gradients)) total += sum;
  return std::sqrt(total);
}

GradClipResult clip_grad_norm(Ops& ops, std::vector<Tensor>& gradients, double max_norm) {
  CHECK_GE(max_norm, 0.0);
  GradClipResult result;
  result.norm = global_grad_norm(ops, gradients);
  result.finite = std::isfinite(result.norm);
  if (!result.finite || max_norm == 0.0) return result;
  // torch's formula, epsilon included, so clipped gradients match it.
  const double coefficient = max_norm / (result.norm + 1e-6);
  if (coefficient >= 1.0) return result;
  for (Tensor& g : gradients) ops.scale(g, static_cast<float>(coefficient));
  result.clipped = true;
  return result;
}

}  // namespace xcomp
