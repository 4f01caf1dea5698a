// One decoder layer of a LLaMA stack, forward and backward, written once over the op
// set: the inference forward (model/llama.cc), the compressor's encoder (with LoRA) and
// its decoder (frozen, attending to a compressed prefix) all run through here.
//
// Keys and values live in a store per layer, [B, capacity, kv_heads, head_dim], with a
// validity mask [B, capacity]; a call covers T new entries at [start, start + T), and
// entries before `start` are a prefix (a KV cache or a compressed prompt).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "model/llama.h"
#include "model/lora.h"
#include "model/ops.h"

namespace xcomp {

struct LayerStore {
  Tensor* keys;       // [B, capacity, kv_heads, head_dim], after RoPE
  Tensor* values;
  const Tensor* key_valid;  // I32 [B, capacity]
  int64_t start;      // first entry written by this call
  int64_t length;     // entries in use after this call (start + T)
};

// What the backward pass needs from the forward pass of one layer. In a last-rows layer
// (LayerExtent) x_in and h_attn cover every row, the rest only the rows it computes.
struct LayerActivations {
  Tensor x_in;      // [M, hidden] the residual stream entering the layer
  Tensor h_attn;    // rmsnorm(x_in); kept only when q, k or v has a LoRA adapter
  Tensor q;         // [B, T, heads, head_dim] after RoPE
  Tensor attended;  // [M, heads * head_dim]; kept only when o_proj has a LoRA adapter
  Tensor x_mid;     // residual stream after attention
  Tensor h_mlp;     // rmsnorm(x_mid); kept only when gate_proj or up_proj has one
  Tensor gate, up;  // [M, intermediate] before the activation
  Tensor act;       // swiglu(gate, up); kept only when down_proj has one
  std::array<Tensor, kLoraTargetCount> lora_u;  // scale * drop(x) A^T per adapted projection
};

// LoRA for one layer of one pass: adapters, the dropout in force (0 when not training)
// and the key of its mask.
struct LayerLora {
  LoraWeights* weights = nullptr;  // null: no LoRA
  float dropout = 0.0f;
  uint64_t dropout_seed = 0;
  uint64_t dropout_stream = 0;  // unique per (step, micro-batch, layer); targets are added to it
  // Empty: one dropout mask over the whole input, keyed by dropout_stream. Else one mask
  // per sample over its real rows (padding rows get zeros), keyed by the sample's key and
  // dropout_stream, so a sample's masks do not depend on which samples share its
  // micro-batch or how much padding they bring (a run can change its world size).
  struct SampleRows {
    int64_t first_row = 0, rows = 0;  // in the [M, width] input
    uint64_t key = 0;
  };
  std::vector<SampleRows> samples;
  // The rows of each sample a pass's input holds: all of them (last_rows 0), or only the
  // last `last_rows` of its `rows_per_sample` (a layer past which only those rows are
  // read; samples' rows still count in the whole input): their masks are then the whole
  // input's at those rows, so that leaving the other rows out changes no value.
  int64_t last_rows = 0, rows_per_sample = 0;
};

// How far a layer runs:
//  - full: every row's output;
//  - keys and values only: it stops after writing this call's K and V to the store (a
//    K/V-mode encoder's last layer matters only through them);
//  - last rows: every row's K and V, but queries, attention, o_proj and the MLP only for
//    the last `rows` rows of each sample, so that its output x is [B * rows, hidden] (an
//    encoder layer past which only the compression tokens' rows are read).
struct LayerExtent {
  enum class Kind { kFull, kKeysValuesOnly, kLastRows };
  Kind kind = Kind::kFull;
  int64_t rows = 0;  // kLastRows: per sample

  static LayerExtent full() { return {}; }
  static LayerExtent keys_values_only() { return {Kind::kKeysValuesOnly, 0}; }
  static LayerExtent last_rows(int64_t rows) { return {Kind::kLastRows, rows}; }
};

// `lora` for an input that holds only the last `rows` of each sample's `rows_per_sample`
// rows of the input `lora` describes.
LayerLora lora_of_last_rows(const LayerLora& lora, int64_t rows, int64_t rows_per_sample);

// What layer_forward does with its input's storage: overwrite it with the layer's output
// (inference), or keep it as it was and put the output in new storage (training, whose
// backward pass reads the input: always so where activations are saved). Kept, the
// residual connections write their sums apart from the stream they add to
// (Ops::linear_residual) rather than copy the stream first.
enum class LayerInput { kOverwrite, kKeep };

// x [M = B*T, hidden] becomes the layer's output: its own storage updated in place, or
// new storage (see LayerInput; `saved` implies kKeep; always new for a last-rows extent,
// whose output has fewer rows). `saved` may be null. positions: I32 [B, T].
void layer_forward(const LlamaModel& model, int layer, Tensor& x, const Tensor& positions, const LayerStore& store,
                   const LayerLora& lora, LayerExtent extent, LayerActivations* saved,
                   LayerInput input = LayerInput::kOverwrite);

// dx: on entry the gradient at the layer's output (zeros for a keys-and-values-only
// layer; [B * rows, hidden] for a last-rows one), on exit the gradient at its input
// [M, hidden]. dkeys/dvalues are the
// store's gradients: on entry they hold whatever later layers' or the decoder's
// attention put there for entries [start, length) and everything before; this call
// adds its own attention's contributions to all entries, and consumes (reads) those of
// [start, length). LoRA gradients are accumulated into the adapters.
void layer_backward(const LlamaModel& model, int layer, Tensor& dx, const Tensor& positions, const LayerStore& store,
                    Tensor& dkeys, Tensor& dvalues, const LayerLora& lora, LayerExtent extent,
                    const LayerActivations& saved);

}  // namespace xcomp
