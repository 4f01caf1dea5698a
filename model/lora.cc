#include "model/lora.h"

#include <glog/logging.h>

#include <cmath>

#include "model/input_error.h"
#include "model/random.h"

namespace xcomp {

namespace {
constexpr const char* kTargetNames[kLoraTargetCount] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                        "gate_proj", "up_proj", "down_proj"};

std::string module_path(int layer, LoraTarget target) {
  const bool attention = target == LoraTarget::kQ || target == LoraTarget::kK || target == LoraTarget::kV ||
                         target == LoraTarget::kO;
  return "base_model.model.model.layers." + std::to_string(layer) + (attention ? ".self_attn." : ".mlp.") +
         lora_target_name(target);
}
}  // namespace

const char* lora_target_name(LoraTarget target) { return kTargetNames[static_cast<int>(target)]; }

LoraTarget lora_target_from_name(const std::string& name, const std::string& context) {
  for (int i = 0; i < kLoraTargetCount; ++i)
    if (name == kTargetNames[i]) return static_cast<LoraTarget>(i);
  throw_input_error(context, ": unknown LoRA target '", name,
                    "' (expected q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj or down_proj)");
}

Shape lora_projection_shape(const LlamaConfig& c, LoraTarget target) {
  switch (target) {
    case LoraTarget::kQ: return {c.q_dim(), c.hidden_size};
    case LoraTarget::kK: return {c.kv_dim(), c.hidden_size};
    case LoraTarget::kV: return {c.kv_dim(), c.hidden_size};
    case LoraTarget::kO: return {c.hidden_size, c.q_dim()};
    case LoraTarget::kGate: return {c.intermediate_size, c.hidden_size};
    case LoraTarget::kUp: return {c.intermediate_size, c.hidden_size};
    case LoraTarget::kDown: return {c.hidden_size, c.intermediate_size};
  }
  LOG(FATAL) << "unknown LoRA target";
  return {};
}

LoraWeights::LoraWeights(const LlamaConfig& config, const LoraSettings& settings, uint64_t seed)
    : settings_(settings), layers_(config.num_hidden_layers) {
  CHECK_GT(settings.r, 0);
  uint64_t stream = 0;
  for (int l = 0; l < num_layers(); ++l) {
    for (LoraTarget target : settings.targets) {
      const Shape shape = lora_projection_shape(config, target);
      const int64_t out = shape[0], in = shape[1];
      LoraAdapter& adapter = layers_[l][static_cast<int>(target)];
      adapter.a = Tensor::empty({settings.r, in});
      const double bound = 1.0 / std::sqrt(static_cast<double>(in));
      float* a = adapter.a.data<float>();
      for (int64_t i = 0; i < adapter.a.numel(); ++i)
        a[i] = static_cast<float>((2 * counter_random_uniform(seed, RandomPurpose::kInit, stream, i) - 1) * bound);
      ++stream;
      adapter.b = Tensor::zeros({out, settings.r});
      adapter.grad_a = Tensor::zeros(adapter.a.shape());
      adapter.grad_b = Tensor::zeros(adapter.b.shape());
    }
  }
}

LoraAdapter* LoraWeights::find(int layer, LoraTarget target) {
  LoraAdapter& a = layers_.at(layer)[static_cast<int>(target)];
  return a.defined() ? &a : nullptr;
}

const LoraAdapter* LoraWeights::find(int layer, LoraTarget target) const {
  const LoraAdapter& a = layers_.at(layer)[static_cast<int>(target)];
  return a.defined() ? &a : nullptr;
}

std::vector<LoraWeights::Named> LoraWeights::parameters() {
  std::vector<Named> out;
  for (int l = 0; l < num_layers(); ++l)
    for (int t = 0; t < kLoraTargetCount; ++t) {
      LoraAdapter& a = layers_[l][t];
      if (!a.defined()) continue;
      const std::string path = module_path(l, static_cast<LoraTarget>(t));
      out.push_back({path + ".lora_A.weight", &a.a, &a.grad_a});
      out.push_back({path + ".lora_B.weight", &a.b, &a.grad_b});
    }
  return out;
}

bool computes_in_host_memory(Ops& ops) { return ops.empty({0}).on_host(); }

LoraWeights lora_on_backend(const LoraWeights& host, Ops& ops, bool with_gradients) {
  const bool shared = computes_in_host_memory(ops);
  LoraWeights copy = host;  // the same adapters, rebound below
  for (auto& named : copy.parameters()) {
    *named.value = ops.upload(*named.value);
    if (!with_gradients) {
      *named.grad = Tensor();
    } else {
      *named.grad = shared || !named.grad->on_host() ? ops.upload(*named.grad) : ops.zeros(named.grad->shape());
    }
  }
  return copy;
}

int64_t LoraWeights::parameter_count() const {
  int64_t n = 0;
  for (const auto& layer : layers_)
    for (const auto& a : layer)
      if (a.defined()) n += a.a.numel() + a.b.numel();
  return n;
}

}  // namespace xcomp
