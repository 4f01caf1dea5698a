// AdamW on fp32 master copies, as torch.optim.AdamW (Loshchilov & Hutter): per parameter
// the first and second moments m and v, bias correction from the step count, and weight
// decay decoupled from the gradient (p -= lr * weight_decay * p before the Adam update).
//
// The parameters are F32 tensors shared with the model (the optimizer updates them in
// place): host tensors, or after place_on the tensors where a backend computes, the
// moments moved there too, so a GPU step never copies them. The learning rate comes with
// each step, from the schedule. The state --
// "<param>.exp_avg", "<param>.exp_avg_sq" and "step" -- goes into checkpoints as named
// tensors and comes back bit for bit.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "model/ops.h"
#include "model/tensor.h"

namespace xcomp {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

class AdamW {
 public:
  explicit AdamW(AdamWOptions options);

  // Registers a trainable F32 tensor under a unique name (not "step"), with zero moments.
  void add_parameter(const std::string& name, Tensor parameter);

  // From now on the parameters are `parameters` (the same shapes, in add_parameter's
  // order: the model's trainables moved to where `ops` computes) and the moments live
  // there too; step, state_tensors and load_state_tensors go through `ops`. On the CPU
  // backend nothing moves.
  void place_on(Ops& ops, const std::vector<Tensor>& parameters);

  // One update of every parameter with its gradient (same order as add_parameter, same
  // shapes, F32) at learning rate `lr`. Increments the step count first, as torch does,
  // so the first update has step 1.
  void step(const std::vector<Tensor>& gradients, double lr);

  int64_t step_count() const { return step_; }
  const AdamWOptions& options() const { return options_; }
  size_t parameter_count() const { return parameters_.size(); }

  // The state as named host tensors: for each parameter "<name>.exp_avg" and
  // "<name>.exp_avg_sq" (copies), then "step" (I32, shape [1]).
  std::vector<std::pair<std::string, Tensor>> state_tensors() const;

  // Restores state_tensors() output, read from `source` (named in errors). Every expected
  // tensor must be there with the parameter's shape and dtype, and nothing else: an
  // InputError otherwise, since a mismatch means the checkpoint is from another model.
  void load_state_tensors(const std::map<std::string, Tensor>& state, const std::string& source);

 private:
  struct Slot {
    std::string name;
    Tensor parameter, exp_avg, exp_avg_sq;
  };
  AdamWOptions options_;
  std::vector<Slot> parameters_;
  int64_t step_ = 0;
  Ops* ops_ = nullptr;  // set by place_on
};

}  // namespace xcomp
