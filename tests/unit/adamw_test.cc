// AdamW against torch.optim.AdamW (tests/reference/make_adamw_reference.py), and its
// state export / import for checkpoints.
#include "trainer/adamw.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "model/input_error.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

using json = nlohmann::json;

json reference() {
  return json::parse(test::read_file(test::source_dir() + "/tests/reference/data/adamw_reference.json"));
}

Tensor tensor_of(const Shape& shape, const json& values) {
  Tensor t = Tensor::empty(shape);
  EXPECT_EQ(static_cast<int64_t>(values.size()), t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = values[static_cast<size_t>(i)].get<float>();
  return t;
}

void expect_close(const Tensor& actual, const json& expected, const std::string& what) {
  ASSERT_EQ(actual.numel(), static_cast<int64_t>(expected.size())) << what;
  for (int64_t i = 0; i < actual.numel(); ++i) {
    const double a = actual.data<float>()[i], e = expected[static_cast<size_t>(i)].get<double>();
    EXPECT_LE(std::fabs(a - e), 1e-6 * std::fabs(e) + 1e-12) << what << "[" << i << "]: " << a << " vs " << e;
  }
}

struct Case {
  AdamW optimizer;
  std::map<std::string, Tensor> params;
};

// The optimizer and parameters of one reference case, before any step.
Case make_case(const json& c) {
  AdamWOptions options;
  options.beta1 = c["beta1"];
  options.beta2 = c["beta2"];
  options.eps = c["eps"];
  options.weight_decay = c["weight_decay"];
  Case out{AdamW(options), {}};
  for (const auto& [name, p] : c["params"].items()) {
    out.params[name] = tensor_of(p["shape"].get<Shape>(), p["initial"]);
    out.optimizer.add_parameter(name, out.params[name]);
  }
  return out;
}

// Gradients of one step, in the order the parameters were added (sorted by name).
std::vector<Tensor> gradients(const Case& c, const json& step_grads) {
  std::vector<Tensor> grads;
  for (const auto& [name, p] : c.params) grads.push_back(tensor_of(p.shape(), step_grads[name]));
  return grads;
}

TEST(AdamW, MatchesTorchAdamW) {
  const json ref = reference();  // named: a range-for over reference()["adamw"] would dangle
  ASSERT_EQ(ref["adamw"].size(), 3u);
  for (const json& c : ref["adamw"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    Case k = make_case(c);
    const json& lrs = c["lrs"];
    for (size_t s = 0; s < lrs.size(); ++s) {
      k.optimizer.step(gradients(k, c["grads"][s]), lrs[s].get<double>());
      for (const auto& [name, p] : k.params) expect_close(p, c["after"][s][name], name + " after step " + std::to_string(s + 1));
    }
    EXPECT_EQ(k.optimizer.step_count(), c["step"].get<int64_t>());
    std::map<std::string, Tensor> state;
    for (auto& [name, t] : k.optimizer.state_tensors()) state[name] = t;
    for (const auto& [name, p] : k.params) {
      expect_close(state.at(name + ".exp_avg"), c["exp_avg"][name], name + ".exp_avg");
      expect_close(state.at(name + ".exp_avg_sq"), c["exp_avg_sq"][name], name + ".exp_avg_sq");
    }
  }
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

TEST(AdamW, ResumingFromExportedStateIsBitIdentical) {
  const json c = reference()["adamw"][0];
  Case run = make_case(c);
  run.optimizer.step(gradients(run, c["grads"][0]), 1e-3);
  run.optimizer.step(gradients(run, c["grads"][1]), 2e-3);

  // A "restarted" optimizer: parameters as checkpointed, state loaded from the export.
  Case resumed = make_case(c);
  for (auto& [name, p] : resumed.params) std::memcpy(p.raw(), run.params.at(name).raw(), p.nbytes());
  std::map<std::string, Tensor> state;
  for (auto& [name, t] : run.optimizer.state_tensors()) state[name] = t;
  EXPECT_EQ(state.size(), 2 * run.params.size() + 1);
  EXPECT_EQ(state.at("step").data<int32_t>()[0], 2);
  resumed.optimizer.load_state_tensors(state, "ckpt/optimizer.safetensors");
  EXPECT_EQ(resumed.optimizer.step_count(), 2);

  run.optimizer.step(gradients(run, c["grads"][2]), 3e-3);
  resumed.optimizer.step(gradients(resumed, c["grads"][2]), 3e-3);
  for (const auto& [name, p] : run.params) EXPECT_TRUE(same_bits(p, resumed.params.at(name))) << name;
  // The export is a copy, not a view of the live moments.
  EXPECT_EQ(state.at("step").data<int32_t>()[0], 2);
}

void expect_load_error(const std::map<std::string, Tensor>& state, const std::string& needle) {
  const json c = reference()["adamw"][0];
  Case k = make_case(c);
  try {
    k.optimizer.load_state_tensors(state, "ckpt/optimizer.safetensors");
    FAIL() << "expected an InputError about " << needle;
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("ckpt/optimizer.safetensors"), std::string::npos) << m;
    EXPECT_NE(m.find(needle), std::string::npos) << m;
  }
  EXPECT_EQ(k.optimizer.step_count(), 0);
}

TEST(AdamW, RejectsStateFromAnotherModel) {
  const json c = reference()["adamw"][0];
  Case k = make_case(c);
  k.optimizer.step(gradients(k, c["grads"][0]), 1e-3);
  std::map<std::string, Tensor> good;
  for (auto& [name, t] : k.optimizer.state_tensors()) good[name] = t;

  auto missing = good;
  missing.erase("tiny.exp_avg_sq");
  expect_load_error(missing, "no tensor 'tiny.exp_avg_sq'");

  auto wrong_shape = good;
  wrong_shape["lora_a.exp_avg"] = Tensor::zeros({4, 3});
  expect_load_error(wrong_shape, "'lora_a.exp_avg' is F32 [4, 3], expected F32 [3, 4]");

  auto extra = good;
  extra["lora_b.exp_avg"] = Tensor::zeros({2});
  expect_load_error(extra, "'lora_b.exp_avg' for no trainable parameter");

  auto no_step = good;
  no_step.erase("step");
  expect_load_error(no_step, "no tensor 'step'");
}

TEST(AdamW, WeightDecayIsDecoupledFromTheGradient) {
  // With a zero gradient the Adam part is 0/(0+eps) = 0: only decay moves the parameter.
  AdamWOptions options;
  options.weight_decay = 0.5;
  AdamW adamw(options);
  Tensor p = Tensor::empty({2});
  p.data<float>()[0] = 2.0f;
  p.data<float>()[1] = -4.0f;
  adamw.add_parameter("p", p);
  adamw.step({Tensor::zeros({2})}, 0.1);
  EXPECT_FLOAT_EQ(p.data<float>()[0], 2.0f * (1.0f - 0.05f));
  EXPECT_FLOAT_EQ(p.data<float>()[1], -4.0f * (1.0f - 0.05f));
}

}  // namespace
}  // namespace xcomp
