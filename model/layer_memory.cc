#include "model/layer_memory.h"

#include <utility>

#include <glog/logging.h>

namespace xcomp {

LayerMemory::LayerMemory(int layers, ActivationMemory kind) : keeps_(true), kind_(kind) {
  if (kind_ == ActivationMemory::kKeep)
    saved_.resize(layers);
  else
    inputs_.resize(layers);
}

void LayerMemory::forward(const LlamaModel& model, int layer, Tensor& x, const Tensor& positions,
                          const LayerStore& store, const LayerLora& lora, LayerExtent extent) {
  if (!keeps_) {
    layer_forward(model, layer, x, positions, store, lora, extent, nullptr);
    return;
  }
  if (kind_ == ActivationMemory::kKeep) {
    layer_forward(model, layer, x, positions, store, lora, extent, &saved_[layer]);
    return;
  }
  inputs_[layer] = x;  // the layer writes its output to new storage
  layer_forward(model, layer, x, positions, store, lora, extent, nullptr, LayerInput::kKeep);
}

void LayerMemory::backward(const LlamaModel& model, int layer, Tensor& dx, const Tensor& positions,
                           const LayerStore& store, Tensor& dkeys, Tensor& dvalues, const LayerLora& lora,
                           LayerExtent extent) {
  CHECK(keeps_) << "layer " << layer << ": backward after a forward pass that kept nothing";
  LayerActivations activations;
  if (kind_ == ActivationMemory::kKeep) {
    activations = std::move(saved_[layer]);
  } else {
    Tensor x = std::move(inputs_[layer]);  // kept as the saved input; the output goes to new storage
    layer_forward(model, layer, x, positions, store, lora, extent, &activations);
  }
  layer_backward(model, layer, dx, positions, store, dkeys, dvalues, lora, extent, activations);
}

}  // namespace xcomp
