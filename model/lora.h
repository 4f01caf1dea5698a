// LoRA adapters on a frozen LLaMA's projections: y = x W^T + (alpha / r) * (drop(x) A^T) B^T
// with A [r, in] and B [out, r]. B starts at zero, so step 0 is exactly the base model.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "model/llama_config.h"
#include "model/ops.h"
#include "model/tensor.h"

namespace xcomp {

// The projections LoRA can adapt, in Hugging Face's names.
enum class LoraTarget { kQ, kK, kV, kO, kGate, kUp, kDown };
constexpr int kLoraTargetCount = 7;
const char* lora_target_name(LoraTarget target);  // "q_proj", ...
// InputError naming `context` for an unknown name.
LoraTarget lora_target_from_name(const std::string& name, const std::string& context);

struct LoraSettings {
  int64_t r = 16;
  double alpha = 32.0;
  double dropout = 0.0;
  std::vector<LoraTarget> targets = {LoraTarget::kQ, LoraTarget::kV};
  double scale() const { return alpha / static_cast<double>(r); }
};

// One adapter: A [r, in], B [out, r], with gradient buffers of the same shapes.
struct LoraAdapter {
  Tensor a, b, grad_a, grad_b;
  bool defined() const { return a.defined(); }
};

// Adapters of every layer, indexed by target (undefined where the target is not adapted).
class LoraWeights {
 public:
  LoraWeights() = default;
  // A drawn as PEFT does (kaiming-uniform with a = sqrt(5): U(-1/sqrt(in), 1/sqrt(in))),
  // from the counter-based generator keyed by seed; B zero.
  LoraWeights(const LlamaConfig& config, const LoraSettings& settings, uint64_t seed);

  const LoraSettings& settings() const { return settings_; }
  int num_layers() const { return static_cast<int>(layers_.size()); }
  LoraAdapter* find(int layer, LoraTarget target);
  const LoraAdapter* find(int layer, LoraTarget target) const;

  // Every trainable tensor with its PEFT-style name
  // ("base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight") and gradient.
  struct Named {
    std::string name;
    Tensor* value;
    Tensor* grad;
  };
  std::vector<Named> parameters();
  int64_t parameter_count() const;

 private:
  LoraSettings settings_;
  std::vector<std::array<LoraAdapter, kLoraTargetCount>> layers_;
};

// A copy of `host` whose tensors are where `ops` computes (on the CPU backend, or for
// tensors already on the device, the same storage), with gradient buffers when
// `with_gradients` (else undefined): what a step or a decoding on that backend reads and
// accumulates into. Gradient buffers already where ops computes are shared; host ones on
// a device start at zero there, and the caller adds them to the host's (uploading the
// host's running sums would move as many bytes as the parameters, for nothing at the
// usual first micro-batch).
LoraWeights lora_on_backend(const LoraWeights& host, Ops& ops, bool with_gradients);

// Whether `ops` computes in host memory (its tensors are the host's own).
bool computes_in_host_memory(Ops& ops);

// [out, in] of a projection for a config.
Shape lora_projection_shape(const LlamaConfig& config, LoraTarget target);

}  // namespace xcomp
