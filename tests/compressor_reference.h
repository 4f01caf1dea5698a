// An independent double-precision statement of the compressor step (DESIGN.md, "The
// method, exactly"), for checking model/compressor.cc: its loss against this one, and
// its gradients against central finite differences of this one.
//
// It is written from the definitions, one sample at a time and without padding, by
// composing the double ops of tests/op_reference.h: a sample's encoder input is its text
// followed by the N compression tokens at positions 0..len+N-1 (LoRA on); in K/V mode the
// decoder (no LoRA) attends to the K (after RoPE) and V of those N positions at every
// layer as a prefix, its own positions starting at N (kReference) or len+N
// (kAfterPrefix); in embedding mode the encoder's final-norm hidden states at those
// positions are the decoder's first N input rows (positions 0..), and the AE token
// replaces the first decoder token's embedding; in mode none there is no encoder and the
// decoder, with the LoRA, reads the decoder tokens alone (they hold the context) at
// positions 0... The loss is sum(token_weight * CE) over the targets that are not -1.
// Because every sample is computed alone, agreement with the padded batch of the real
// step also checks its padding masks.
//
// The encoder's last layer is computed in full even in K/V mode, so that the "its query
// path does not matter" shortcut of the real step is something this reference checks
// rather than assumes.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "model/compressor.h"
#include "model/llama_weights.h"
#include "model/lora.h"
#include "tests/op_reference.h"

namespace xcomp::test {

struct ReferenceLayer {
  Vec attn_norm, wq, wk, wv, wo, mlp_norm, w_gate, w_up, w_down;
};

// The frozen base model in double (copied from F32 weights).
struct ReferenceModel {
  LlamaConfig config;
  Vec embed;
  std::vector<ReferenceLayer> layers;
  Vec final_norm, lm_head;
  Vec inv_freq;  // theta^(-2i/d), rounded to float as Hugging Face computes it (no rope scaling)
};
ReferenceModel reference_model(const LlamaConfig& config, const LlamaWeights& weights);

// One LoRA adapter, A [r, in] and B [out, r]; both empty when the projection is not adapted.
struct ReferenceAdapter {
  Vec a, b;
  bool defined() const { return !a.empty(); }
};

// The trainable parameters and the settings that shape the computation.
struct ReferenceCompressor {
  CompressorMode mode = CompressorMode::kKeyValue;
  DecoderPositions decoder_positions = DecoderPositions::kReference;
  double memory_scale = 1;  // embedding mode: the slots' factor
  int64_t n = 0;            // compression tokens
  int64_t r = 0;            // LoRA rank
  double lora_scale = 0;    // alpha / r
  Vec tokens;               // [N, hidden]; empty in mode none
  Vec ae_token;             // [hidden], embedding mode only
  std::vector<std::array<ReferenceAdapter, kLoraTargetCount>> lora;  // [layer][target]
};
// Copies the compressor's current values (LoRA dropout is not modelled: tests use 0).
ReferenceCompressor reference_compressor(Compressor& compressor);

// One unpadded sample: decoder_tokens and targets have the same length; target -1: none.
struct ReferenceSample {
  std::vector<int32_t> text, decoder_tokens, targets;
};

// The batch the real step takes: text right-padded (with token 0) to the longest text
// (no text when every sample's is empty), decoder tokens right-padded (token 0, target
// -1) to the longest decoder input.
CompressorBatch make_compressor_batch(const std::vector<ReferenceSample>& samples);

// sum over samples and targets of token_weight * cross-entropy.
double reference_loss(const ReferenceModel& model, const ReferenceCompressor& compressor,
                      const std::vector<ReferenceSample>& samples, double token_weight);

// The compressed prompt of one text: per layer K (after RoPE) and V at the N compression
// positions, [N, kv_heads, head_dim] each (K/V mode), or the final-norm hidden states
// there, [N, hidden] (embedding mode).
struct ReferenceCompressed {
  std::vector<Vec> keys, values;
  Vec embeddings;
};
ReferenceCompressed reference_compress(const ReferenceModel& model, const ReferenceCompressor& compressor,
                                       const std::vector<int32_t>& text);

}  // namespace xcomp::test
