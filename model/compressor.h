// The 500xCompressor step: a frozen LLaMA with LoRA (the encoder) reads a text followed
// by N learned compression tokens; in K/V mode the keys and values of those N positions
// at every layer become the prefix the frozen model without LoRA (the decoder) attends
// to; in embedding mode (ICAE) the encoder's final hidden states at those positions are
// the decoder's first input embeddings. Forward and backward of one micro-batch.
//
// Mode none is the upper bound the compressors are measured against (issue 8): nothing
// is compressed. There is no encoder pass and there are no compression tokens; the
// decoder itself carries the LoRA adapters (the same r, alpha, targets and dropout, so
// the same trainable budget) and reads the uncompressed context in its prompt, which
// the caller puts in the decoder tokens (trainer/objective.h, full_context_qa_batch).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "model/llama.h"
#include "model/lora.h"

namespace xcomp {

// kNone: no compression (see above); the decoder with LoRA on the decoder tokens alone.
enum class CompressorMode { kKeyValue, kEmbedding, kNone };
// kReference: decoder positions start at N (the paper's code: decoder queries sit
// "before" the compressed keys at L..L+N-1). kAfterPrefix: they start at L + N.
enum class DecoderPositions { kReference, kAfterPrefix };
// What a training step keeps for its backward pass. kKeep: every layer's activations
// (the fastest). kRecompute: only each layer's input; the backward pass runs the layer's
// forward again just before its backward (per-layer recomputation: at LLaMA-3-8B's shape
// with LoRA on q and v, activation memory falls from 11 vectors of the hidden size per
// token and layer to one, for one more forward pass). The gradients are the same.
enum class ActivationMemory { kKeep, kRecompute };

struct CompressorSettings {
  CompressorMode mode = CompressorMode::kKeyValue;
  int64_t num_tokens = 16;  // N (>= 1); not used in mode none
  DecoderPositions decoder_positions = DecoderPositions::kReference;
  float memory_scale = 1.0f;  // embedding mode: slots x this before the decoder (1 = ICAE)
  LoraSettings lora;
};

// The trainable parameters: LoRA adapters, the N compression-token embeddings (none in
// mode none) and, in embedding mode, the AE token that starts regeneration. Values and
// gradients are fp32 host tensors (the optimizer's masters) until place_on moves them to
// where a backend computes; a step on a device backend with host tensors works on copies
// and adds its gradients back here, with placed tensors it works on them directly.
// The gradients are views of one buffer, end to end in parameters()' order, so that a
// step zeroes them with one call and data parallelism reduces them with one collective
// (on a GPU: NCCL straight on the device buffer), never packing them first.
class Compressor {
 public:
  Compressor(const LlamaConfig& config, const CompressorSettings& settings, uint64_t seed);

  const CompressorSettings& settings() const { return settings_; }
  LoraWeights& lora() { return lora_; }
  Tensor& tokens() { return tokens_; }  // [N, hidden]; undefined in mode none
  Tensor& ae_token() { return ae_token_; }  // [1, hidden], embedding mode only
  Tensor& tokens_grad() { return tokens_grad_; }
  Tensor& ae_token_grad() { return ae_token_grad_; }

  struct Named {
    std::string name;
    Tensor* value;
    Tensor* grad;
  };
  // Every trainable tensor with its gradient buffer, in a fixed order.
  std::vector<Named> parameters();
  int64_t parameter_count();
  void zero_grad();
  // The values, and the gradient buffers, in parameters()' order (the tensors themselves).
  std::vector<Tensor> values();
  std::vector<Tensor> gradients();
  // Every gradient end to end (F32 [parameter_count()]), where the gradients live: the
  // storage gradients() are views of.
  const Tensor& gradient_buffer() const { return gradient_buffer_; }
  // Where layer `layer`'s LoRA gradients lie in gradient_buffer(), [begin, end) in
  // elements (empty when the layer has no adapters): one contiguous run per layer, layer
  // 0's first, after the compression and AE tokens'.
  std::pair<int64_t, int64_t> lora_gradient_range(int layer);

  // Moves every value and gradient to where `ops` computes (values copied, gradients
  // zero there; on the CPU backend nothing moves), for a training loop that keeps them
  // on the device. Call it after everything that loads values (load_trainable_tensors
  // refuses a compressor on a device); `ops` must outlive the compressor.
  void place_on(Ops& ops);
  bool on_device() const { return device_ops_ != nullptr; }
  // The values as named host tensors: copies from the device after place_on, else the
  // tensors themselves.
  std::vector<std::pair<std::string, Tensor>> host_values();

 private:
  // Makes every gradient a view of gradient_buffer_ (zeros in `buffer`, which must hold
  // parameter_count() F32 values).
  void bind_gradients_to(Tensor buffer);

  CompressorSettings settings_;
  LoraWeights lora_;
  Tensor tokens_, tokens_grad_, ae_token_, ae_token_grad_;
  Tensor gradient_buffer_;
  Ops* device_ops_ = nullptr;  // set by place_on when the tensors moved to a device
};

// One micro-batch, already tokenised.
//   text: I32 [B, L] right-padded, text_lengths[b] real tokens (>= 1); not read in mode
//     none (it may be left undefined, text_lengths empty);
//   decoder_tokens: I32 [B, T] right-padded with decoder_lengths[b] real tokens: for
//     regeneration [BOS] + text (in embedding mode the first token's embedding is
//     replaced by the AE token), for QA the question prompt + answer; in mode none the
//     whole input, context included ([BOS] + context + question prompt + answer);
//   targets: I32 [B, T], the token each decoder position predicts, -1 for none
//     (padding, the QA prompt).
struct CompressorBatch {
  Tensor text;
  std::vector<int64_t> text_lengths;
  Tensor decoder_tokens;
  std::vector<int64_t> decoder_lengths;
  Tensor targets;
  // Optional, one per row: a key naming the sample (the same wherever and with whatever
  // it is batched). With keys, LoRA dropout masks are drawn per sample from (key,
  // dropout_stream), so a run that changes its world size keeps its masks; without,
  // one mask per micro-batch from dropout_stream.
  std::vector<uint64_t> sample_keys;
};

struct CompressorLoss {
  double sum = 0;        // sum of per-target losses (each times token_weight)
  int64_t targets = 0;
  double end_sum = 0;    // the part from targets equal to end_id (the end-of-text target)
  int64_t end_targets = 0;
  // Teacher-forced accuracy: targets that are the argmax of their logits (the first
  // maximum, as torch.argmax), and of those the end-of-text ones. Counted only by a
  // loss-only call (StepOptions::backward false, decoder_only_loss): validation.
  int64_t correct = 0;
  int64_t end_correct = 0;
};

// The most logits (fp32) the loss holds at once, with as many for their gradients: 256 MiB
// each, about 500 rows of LLaMA-3's 128256-entry vocabulary.
constexpr int64_t kLossChunkElements = int64_t{64} << 20;

struct StepOptions {
  float token_weight = 1.0f;  // multiplies every target's loss (1 / targets in the global batch)
  int32_t end_id = -1;        // targets equal to this count as end-of-text in CompressorLoss
  uint64_t dropout_seed = 0;
  uint64_t dropout_stream = 0;  // unique per (step, micro-batch)
  bool backward = true;         // false: loss only (validation)
  ActivationMemory activations = ActivationMemory::kKeep;  // with backward
  // Embedding mode: the AE token replaces the first decoder token (regeneration's BOS).
  // QA fine-tuning feeds the question prompt right after the memory instead.
  bool ae_token = true;
  // Rows of logits computed at a time for the loss (the decoder's positions x the
  // vocabulary): 0 takes as many as keep one chunk's logits within kLossChunkElements,
  // so a 128k vocabulary never has fp32 logits for the whole batch at once.
  int64_t loss_rows_per_chunk = 0;
  // Called during backward once the work writing each layer's LoRA gradients into the
  // compressor's own buffers is queued, layer by layer from the last (on a device the
  // work may still be running: order after it on Ops::stream_handle()). So a caller can
  // start reducing a layer's gradients while backward goes on (trainer/data_parallel.h).
  // With host trainables on a device backend the gradients reach the compressor at the
  // end of the step: every layer is reported then. Not called without backward.
  std::function<void(int layer)> lora_gradients_ready;
};

// The capacity of a training decoder's key/value stores holding `entries` entries of
// which the first `prefix` are a compressed prompt: behind a prefix, rounded up to a
// multiple of 8 (the extra entries never valid), so that the key and value gradients'
// products of the CUDA backend's bf16 attention are of no odd size (N + 1 + text
// entries are 497 at 480-token texts and N = 16); without one, exactly `entries`, as the
// layers then project k and v straight into the store, which saves more.
int64_t decoder_store_capacity(int64_t prefix, int64_t entries);

// Runs the encoder and the decoder on the batch and, with options.backward,
// accumulates the gradients of sum(token_weight * loss) into the compressor. In mode
// none: the decoder with LoRA (dropout per sample over its real rows) on the decoder
// tokens at positions 0.., padding masked; gradients into LoRA only.
CompressorLoss compressor_step(const LlamaModel& model, Compressor& compressor, const CompressorBatch& batch,
                               const StepOptions& options);

// The no-prefix baseline: the decoder alone on the batch's decoder tokens (positions
// 0..), scored on the same targets, without any compressed prompt. Weights 1 per target.
CompressorLoss decoder_only_loss(const LlamaModel& model, const CompressorBatch& batch, int32_t end_id);

// The per-layer keys and values (K/V mode, [B, N, kv_heads, head_dim], keys after RoPE)
// or the final hidden states (embedding mode, one tensor [B, N, hidden]) of the
// compressed prompt, with the encoder positions they were computed at. Host tensors.
struct CompressedPrompt {
  CompressorMode mode;
  std::vector<Tensor> keys, values;
  Tensor embeddings;
  std::vector<int64_t> text_lengths;
};
// InputError in mode none: there is nothing to compress.
CompressedPrompt compress(const LlamaModel& model, Compressor& compressor, const Tensor& text,
                          const std::vector<int64_t>& text_lengths);

}  // namespace xcomp
