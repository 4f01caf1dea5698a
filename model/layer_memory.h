// What a training pass keeps of its layers for the backward pass
// (StepOptions::activations, train.activations): every layer's activations, or only each
// layer's input, from which the backward pass recomputes them one layer at a time, just
// before that layer's backward; or nothing, when no backward pass follows (a
// default-constructed one). The compressor's encoder and decoder each hold one.
#pragma once

#include <vector>

#include "model/compressor.h"
#include "model/llama_layer.h"

namespace xcomp {

class LayerMemory {
 public:
  LayerMemory() = default;  // keeps nothing: forward only
  LayerMemory(int layers, ActivationMemory kind);

  // Runs `layer` forward on x, which becomes its output (updated in place where nothing
  // is kept; else new storage, the input's being what is kept: LayerInput), keeping what
  // the backward pass will need.
  void forward(const LlamaModel& model, int layer, Tensor& x, const Tensor& positions, const LayerStore& store,
               const LayerLora& lora, LayerExtent extent);

  // Runs `layer` backward (as layer_backward, with the same arguments as its forward; not
  // on one that keeps nothing)
  // and lets go of what was kept for it. When recomputing, the layer's forward runs again
  // first from the kept input: the same LoRA dropout masks (drawn from their keys) and
  // the same keys and values, written into the store again.
  void backward(const LlamaModel& model, int layer, Tensor& dx, const Tensor& positions, const LayerStore& store,
                Tensor& dkeys, Tensor& dvalues, const LayerLora& lora, LayerExtent extent);

 private:
  bool keeps_ = false;
  ActivationMemory kind_ = ActivationMemory::kKeep;
  std::vector<LayerActivations> saved_;  // kKeep
  std::vector<Tensor> inputs_;           // kRecompute
};

}  // namespace xcomp
