// Global-norm gradient clipping over all trainable gradients, as
// torch.nn.utils.clip_grad_norm_: when the L2 norm of all gradients together exceeds
// max_norm, every gradient is scaled by max_norm / (norm + 1e-6).
//
// Differences from torch, on purpose: the norm is accumulated in double (the sum of
// squares of a few million fp32 values loses digits in float), and a non-finite norm is
// reported and leaves the gradients alone -- the caller decides (train.nonfinite: stop or
// skip) instead of having every parameter turned into NaN.
#pragma once

#include <vector>

#include "model/ops.h"
#include "model/tensor.h"

namespace xcomp {

struct GradClipResult {
  double norm = 0.0;     // the global norm before clipping
  bool finite = true;    // false: a NaN or Inf in some gradient; nothing was scaled
  bool clipped = false;  // true when the gradients were scaled down
};

// The L2 norm of all F32 gradients together, in double; the gradients are where `ops`
// computes (each tensor's sum of squares there, Ops::sums_of_squares, then added in order).
double global_grad_norm(Ops& ops, const std::vector<Tensor>& gradients);

// Scales the gradients (in place, where `ops` computes) so their global norm is at most
// max_norm; max_norm 0 turns clipping off (the norm is still measured and returned).
GradClipResult clip_grad_norm(Ops& ops, std::vector<Tensor>& gradients, double max_norm);

}  // namespace xcomp
