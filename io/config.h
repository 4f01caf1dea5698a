// The experiment configuration: one YAML file per experiment (configs/*.yaml), plus
// `key.sub=value` overrides from the command line, read into a typed struct.
//
//   xcomp train --config configs/stories260k-regen-kv.yaml run_dir=runs/try train.steps=50
//
// Every key has a type, a default (the member initialisers below) and a range or a set
// of allowed values (io/config_schema.cc lists them with their documentation). Anything
// else -- an unknown or misspelt key, a wrong type, a value out of range, a key given
// twice, a YAML syntax error -- is an InputError naming the key and `file:line:column`
// (or the override's text), with a suggestion for a misspelt key.
//
// String values (paths) may use environment variables: ${VAR}, ${VAR:-default}, and $$
// for a literal $ (io/env_expand.h). An unset variable without a default is an error
// naming the key. Relative paths are relative to the working directory, as on the
// command line. Files are not opened here: whoever uses a path reports a missing file.
//
// The resolved configuration (every key with its value, environment expanded) is saved
// in the run directory and in each checkpoint, and reads back into the same config.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/compressor.h"

namespace xcomp {

// CompressorMode (kKeyValue "kv", kEmbedding "embedding", kNone "none") and
// DecoderPositions (kReference "reference", kAfterPrefix "after_prefix") and
// ActivationMemory (kKeep "keep", kRecompute "recompute") belong to the model
// (model/compressor.h); the configuration uses them as they are.

enum class Objective {
  kRegeneration,  // "regeneration": decoder input [BOS] + text, targets text + [EOS]
  kQa,            // "qa": "Question: {q} Answer: " + answer, loss on answer + [EOS]
};

// Learning-rate schedules, as in Hugging Face transformers (trainer/schedule.h).
enum class LrScheduleKind { kConstantWithWarmup, kCosine, kLinear };

// What a step with a non-finite loss or gradient norm does.
enum class NonfiniteAction {
  kStop,  // "stop": write nothing, report the step, exit non-zero
  kSkip,  // "skip": drop this step's update, count it, go on
};

enum class ProgressMode {
  kAuto,    // a progress line when standard error is a terminal
  kAlways,
  kNever,
};

enum class Backend { kCpu, kCuda };

// How the CUDA backend stores the frozen weights (the CPU backend always computes in fp32).
enum class CudaWeights {
  kBf16,  // "bf16": half the memory, tensor-core products, TF32 attention (training at scale)
  kF32,   // "f32": fp32 products and attention, the CPU backend's numbers to fp32 rounding
};

// The CUDA backend's kernels and allocator (`cuda:`; README "GPU"). Each `default` leaves
// the choice to its XCOMP_CUDA_* environment variable, and where that is unset too, to
// the backend's own default (attention gemm_causal, products cublas, the caching
// allocator). The CPU backend ignores them.
enum class CudaAttentionChoice { kDefault, kGemm, kGemmCausal, kGemmCausalBf16, kFlash, kFlashBf16, kTiled };
enum class CudaGemmChoice { kDefault, kCublas, kLt, kLtTuned };

struct CudaConfig {
  CudaAttentionChoice attention = CudaAttentionChoice::kDefault;           // the forward's kernels
  CudaAttentionChoice attention_backward = CudaAttentionChoice::kDefault;  // the backward's
  int64_t causal_block = 0;  // gemm_causal's queries per block; 0 = XCOMP_CUDA_CAUSAL_BLOCK or 128
  CudaGemmChoice gemm = CudaGemmChoice::kDefault;  // the bf16 and TF32 products' path
  // The memory arena: "" = XCOMP_CUDA_ARENA or none, "none" (the caching allocator),
  // "auto" (the free memory less 5% of the total, at least 2 GiB) or a size in GiB ("70").
  std::string arena;
};

// The YAML spelling of each value ("kv", "after_prefix", ...), for logs and messages.
const char* name_of(CompressorMode value);
const char* name_of(DecoderPositions value);
const char* name_of(Objective value);
const char* name_of(LrScheduleKind value);
const char* name_of(NonfiniteAction value);
const char* name_of(ProgressMode value);
const char* name_of(Backend value);
const char* name_of(CudaWeights value);
const char* name_of(ActivationMemory value);
const char* name_of(CudaAttentionChoice value);
const char* name_of(CudaGemmChoice value);

// The value of E spelled `text` as in the YAML config, for command-line flags that take
// the same values as a config key (`xcomp eval --device cuda`). InputError naming `what`
// and the spellings there are otherwise. Defined for Backend, CudaWeights, CompressorMode,
// ActivationMemory, CudaAttentionChoice, CudaGemmChoice.
template <class E>
E value_named(const std::string& text, const std::string& what);

struct ModelConfig {
  std::string path;       // Hugging Face directory, .gguf, or llama2.c .bin (required)
  std::string tokenizer;  // "" = the model's own (required for llama2.c .bin models)
};

struct CompressorConfig {
  // none: no compression, the QA upper bound: the decoder gets the whole context in its
  // prompt and the LoRA adapters (same lora.* budget); only with objective qa.
  CompressorMode mode = CompressorMode::kKeyValue;
  int64_t num_tokens = 16;     // N compression tokens; ignored with mode none
  int64_t max_text_len = 512;  // text tokens fed to the encoder, or mode none's prompt (longer texts are cut)
  DecoderPositions decoder_positions = DecoderPositions::kReference;
  // Embedding mode: the memory slots are multiplied by this before the decoder reads
  // them. 1 is the method (ICAE); other values are an experiment (README "Results").
  double memory_scale = 1.0;
};

struct LoraConfig {
  int64_t r = 16;
  double alpha = 32.0;  // the update is scaled by alpha / r
  double dropout = 0.0;
  // Projections that get LoRA: a non-empty subset of q_proj, k_proj, v_proj, o_proj,
  // gate_proj, up_proj, down_proj without repeats, kept in that order whatever order the
  // YAML lists them in (so [v_proj, q_proj] and [q_proj, v_proj] are the same config).
  std::vector<std::string> targets = {"q_proj", "v_proj"};
};

struct DataConfig {
  std::vector<std::string> train;       // HDF5 shard paths or globs (required, non-empty)
  std::vector<std::string> validation;  // the same, for eval (required when eval.every > 0)
  int64_t micro_batch = 8;              // samples per rank per forward/backward
  int64_t shuffle_seed = 0;             // seeds the sampler's per-epoch order
};

struct TrainConfig {
  int64_t steps = 1000;       // optimizer steps
  int64_t accumulation = 1;   // micro batches per optimizer step
  double lr = 1e-4;           // peak learning rate
  LrScheduleKind schedule = LrScheduleKind::kConstantWithWarmup;
  int64_t warmup_steps = 0;   // linear warmup from 0 (<= steps)
  double min_lr_ratio = 0.0;  // cosine/linear: the lr at the end is min_lr_ratio * lr
  double weight_decay = 0.0;  // decoupled, as torch.optim.AdamW
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_eps = 1e-8;
  double grad_clip = 1.0;     // max global gradient norm; 0 = no clipping
  NonfiniteAction nonfinite = NonfiniteAction::kStop;
  // 0 = off; else this invocation stops (after a checkpoint) once the global step reaches
  // stop_after, as if interrupted: the schedule still runs to `steps` on resume.
  int64_t stop_after = 0;
  // What a step keeps for its backward pass (model/compressor.h): "keep" every layer's
  // activations, or "recompute" them from each layer's input (less memory, one more
  // forward pass; the same gradients).
  ActivationMemory activations = ActivationMemory::kKeep;
  // "" = fresh LoRA and compression tokens; else a checkpoint directory whose trainable
  // weights start this run (optimizer state and step are not taken). Used only when the
  // run starts fresh, not when it resumes.
  std::string init_from;
};

struct EvalConfig {
  int64_t every = 0;    // evaluate every this many steps (and at the end); 0 = never
  int64_t batches = 8;  // validation micro batches per evaluation
};

struct CheckpointConfig {
  int64_t every = 500;  // write a checkpoint every this many steps; 0 = only at the end
  int64_t keep = 3;     // keep the newest this many
};

struct LogConfig {
  int64_t every = 10;  // write a metrics line every this many steps
  ProgressMode progress = ProgressMode::kAuto;
};

struct ExperimentConfig {
  std::string run_dir;  // checkpoints, metrics and the resolved config go here (required)
  // "" = start fresh; "auto" = resume from the newest good checkpoint in run_dir when
  // there is one (else start fresh); else the path of a checkpoint to resume from.
  std::string resume;
  int64_t seed = 0;  // initialisation and dropout randomness
  Backend backend = Backend::kCpu;
  CudaWeights cuda_weights = CudaWeights::kBf16;  // ignored on the CPU backend
  CudaConfig cuda;                                // ignored on the CPU backend
  int64_t threads = 0;  // CPU threads; 0 = the cores divided by the ranks on this node
  Objective objective = Objective::kRegeneration;
  ModelConfig model;
  CompressorConfig compressor;
  LoraConfig lora;
  DataConfig data;
  TrainConfig train;
  EvalConfig eval;
  CheckpointConfig checkpoint;
  LogConfig log;
};

// Reads `yaml_path`, applies `overrides` in order ("train.steps=100", "lora.targets=[q_proj,
// k_proj]", "lora={r: 8, alpha: 16}"; values are YAML), and validates the result.
// Throws InputError as described at the top of this file.
ExperimentConfig load_experiment_config(const std::string& yaml_path, const std::vector<std::string>& overrides);

// Every key with its value, defaults included, in a fixed order, as YAML that
// load_experiment_config reads back into the same configuration.
std::string resolved_config_yaml(const ExperimentConfig& config);

// Writes resolved_config_yaml atomically (io/atomic_file.h).
void save_resolved_config(const ExperimentConfig& config, const std::string& path);

// The keys whose values differ between a checkpoint's configuration and the current one
// in a way that makes resuming from it meaningless: the model and tokenizer, the
// compressor mode and num_tokens (unless both are mode none, which ignores it), lora.r
// and lora.targets, the objective. Empty when resuming is fine. Paths compare equal when
// they name the same file.
std::vector<std::string> resume_incompatible_keys(const ExperimentConfig& saved, const ExperimentConfig& now);

// One key's value as YAML text ("16", "[q_proj, v_proj]", "\"runs/x\""), for messages
// such as "lora.r is 8 here but 16 in the checkpoint". CHECKs that the key exists.
std::string config_value_text(const ExperimentConfig& config, const std::string& key);

}  // namespace xcomp
