#include "trainer/adamw.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "model/adamw_step.h"
#include "model/input_error.h"

namespace xcomp {

namespace {
const char* kStepName = "step";
}  // namespace

AdamW::AdamW(AdamWOptions options) : options_(options) {}

void AdamW::add_parameter(const std::string& name, Tensor parameter) {
  CHECK(parameter.defined() && parameter.dtype() == DType::F32) << "AdamW parameter " << name << " must be F32";
  CHECK(name != kStepName) << "AdamW: the parameter name '" << kStepName << "' is reserved";
  for (const Slot& slot : parameters_) CHECK(slot.name != name) << "AdamW parameter " << name << " added twice";
  const Shape shape = parameter.shape();
  parameters_.push_back({name, std::move(parameter), Tensor::zeros(shape), Tensor::zeros(shape)});
}

void AdamW::place_on(Ops& ops, const std::vector<Tensor>& parameters) {
  CHECK_EQ(parameters.size(), parameters_.size()) << "AdamW::place_on: one tensor per parameter";
  for (size_t i = 0; i < parameters_.size(); ++i) {
    Slot& slot = parameters_[i];
    CHECK(parameters[i].shape() == slot.parameter.shape() && parameters[i].dtype() == DType::F32)
        << "AdamW::place_on: " << slot.name << " must stay F32 " << shape_str(slot.parameter.shape());
    slot.parameter = parameters[i];
    slot.exp_avg = ops.upload(slot.exp_avg);  // the same tensors on the CPU backend
    slot.exp_avg_sq = ops.upload(slot.exp_avg_sq);
  }
  ops_ = &ops;
}

void AdamW::step(const std::vector<Tensor>& gradients, double lr) {
  CHECK_EQ(gradients.size(), parameters_.size()) << "AdamW::step: one gradient per parameter";
  ++step_;
  const AdamWStepScalars scalars =
      adamw_step_scalars(lr, options_.beta1, options_.beta2, options_.eps, options_.weight_decay, step_);
  for (size_t i = 0; i < parameters_.size(); ++i) {
    Slot& slot = parameters_[i];
    const Tensor& g = gradients[i];
    CHECK(g.defined() && g.dtype() == DType::F32 && g.shape() == slot.parameter.shape())
        << "AdamW::step: gradient of " << slot.name << " must be F32 " << shape_str(slot.parameter.shape());
    if (ops_)
      ops_->adamw_update(slot.parameter, g, slot.exp_avg, slot.exp_avg_sq, scalars);
    else
      adamw_update_host(slot.parameter.data<float>(), slot.exp_avg.data<float>(), slot.exp_avg_sq.data<float>(),
                        g.data<float>(), g.numel(), scalars);
  }
}

std::vector<std::pair<std::string, Tensor>> AdamW::state_tensors() const {
  std::vector<std::pair<std::string, Tensor>> state;
  // A host copy: downloaded from a device, or cloned where the moments are host tensors.
  auto host_copy = [&](const Tensor& t) {
    if (!ops_ || t.on_host()) return t.clone();
    return ops_->download(t);
  };
  for (const Slot& slot : parameters_) {
    state.emplace_back(slot.name + ".exp_avg", host_copy(slot.exp_avg));
    state.emplace_back(slot.name + ".exp_avg_sq", host_copy(slot.exp_avg_sq));
  }
  CHECK_LE(step_, std::numeric_limits<int32_t>::max()) << "AdamW step count overflows I32";
  Tensor step = Tensor::empty({1}, DType::I32);
  step.data<int32_t>()[0] = static_cast<int32_t>(step_);
  state.emplace_back(kStepName, step);
  return state;
}

namespace {

// The named tensor, checked for dtype and shape; InputError naming source and tensor.
const Tensor& expect_tensor(const std::map<std::string, Tensor>& state, const std::string& name, DType dtype,
                            const Shape& shape, const std::string& source) {
  const auto it = state.find(name);
  if (it == state.end()) throw_input_error(source, ": optimizer state has no tensor '", name, "'");
  const Tensor& t = it->second;
  if (t.dtype() != dtype || t.shape() != shape)
    throw_input_error(source, ": optimizer tensor '", name, "' is ", dtype_name(t.dtype()), " ", shape_str(t.shape()),
                      ", expected ", dtype_name(dtype), " ", shape_str(shape));
  return t;
}

}  // namespace

void AdamW::load_state_tensors(const std::map<std::string, Tensor>& state, const std::string& source) {
  const size_t expected_count = 2 * parameters_.size() + 1;
  const Tensor& step = expect_tensor(state, kStepName, DType::I32, {1}, source);
  const int32_t loaded_step = step.data<int32_t>()[0];
  if (loaded_step < 0) throw_input_error(source, ": optimizer step is ", loaded_step, ", expected >= 0");
  // Check everything before changing anything, so a bad file leaves the optimizer as it was.
  std::vector<std::pair<const Tensor*, const Tensor*>> moments;
  for (const Slot& slot : parameters_) {
    const Shape& shape = slot.parameter.shape();
    moments.emplace_back(&expect_tensor(state, slot.name + ".exp_avg", DType::F32, shape, source),
                         &expect_tensor(state, slot.name + ".exp_avg_sq", DType::F32, shape, source));
  }
  if (state.size() != expected_count) {
    for (const auto& [name, tensor] : state) {
      const bool known = name == kStepName || std::any_of(parameters_.begin(), parameters_.end(), [&](const Slot& s) {
                           return name == s.name + ".exp_avg" || name == s.name + ".exp_avg_sq";
                         });
      if (!known) throw_input_error(source, ": optimizer state has a tensor '", name, "' for no trainable parameter");
    }
  }
  for (size_t i = 0; i < parameters_.size(); ++i) {
    Slot& slot = parameters_[i];
    if (ops_ && !slot.exp_avg.on_host()) {
      ops_->upload_into(*moments[i].first, slot.exp_avg);
      ops_->upload_into(*moments[i].second, slot.exp_avg_sq);
    } else {
      std::memcpy(slot.exp_avg.raw(), moments[i].first->raw(), moments[i].first->nbytes());
      std::memcpy(slot.exp_avg_sq.raw(), moments[i].second->raw(), moments[i].second->nbytes());
    }
  }
  step_ = loaded_step;
}

}  // namespace xcomp
