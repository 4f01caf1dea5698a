// A trained compressor ready to use: the run's configuration, the base model, and the
// LoRA and compression-token tensors a training run saved. What `xcomp eval`,
// `compress`, `answer`, `regenerate` and `export-peft` start from.
//
// A checkpoint may be named as
//   - a trainable.safetensors file (tensor names: Compressor::parameters());
//   - a directory holding one (a checkpoint such as <run_dir>/checkpoints/step_00000300);
//   - a run directory: its newest checkpoint as <run_dir>/checkpoints/latest names it,
//     else <run_dir>/trainable.safetensors (what a run without checkpoints leaves).
// A checkpoint's files are verified against the sha256 digests its state.json records
// (io/checkpoint.h) before use: a damaged one is an InputError naming the file.
// The compressor's shape (mode, N, LoRA r, alpha and targets, decoder positions) comes
// from the run's config.yaml, found beside the file or up to two directories above it.
// A mode-none checkpoint (compressor.mode: none) holds LoRA only, the decoder's.
#pragma once

#include <memory>
#include <string>

#include "io/config.h"
#include "io/model_loader.h"
#include "model/compressor.h"
#include "model/llama.h"
#include "trainer/objective.h"

namespace xcomp {

// The trainable.safetensors a checkpoint argument means, verified when it belongs to a
// checkpoint; InputError naming the path when there is none or it is damaged.
std::string resolve_trainable_file(const std::string& checkpoint);

// The config.yaml of the run that wrote `trainable_file`; InputError when none is found.
std::string find_run_config(const std::string& trainable_file);

// The model's settings from a config (num_tokens 0 in mode none, which has no tokens).
CompressorSettings compressor_settings_of(const ExperimentConfig& config);

struct TrainedCompressorOptions {
  std::string checkpoint;  // as above (required)
  std::string config;      // "" = found with find_run_config
  std::string model;       // "" = the run's model.path
  std::string tokenizer;   // "" = the run's model.tokenizer
};

struct TrainedCompressor {
  ExperimentConfig config;
  std::string trainable_path;
  std::string trainable_sha256;  // of the file's bytes
  LoadedModel loaded;
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<Compressor> compressor;
  ObjectiveTokens tokens;
};

// A checkpoint argument resolved (and verified) and its run's config read: what a
// command needs to choose its backend from the run's own settings (cuda_weights) before
// it loads anything onto one.
struct TrainedRun {
  std::string trainable_path;
  ExperimentConfig config;
};
TrainedRun find_trained_run(const TrainedCompressorOptions& options);

// Loads everything onto `ops` (which must outlive the result). InputError for a missing
// file, a tensor missing from the checkpoint or shaped differently from what the config
// makes. The first form is find_trained_run followed by the second.
std::unique_ptr<TrainedCompressor> load_trained_compressor(const TrainedCompressorOptions& options, Ops& ops);
std::unique_ptr<TrainedCompressor> load_trained_compressor(const TrainedCompressorOptions& options,
                                                           const TrainedRun& run, Ops& ops);

// Copies the trainable tensors of `file` into `compressor`, checking the compressor mode
// the file was written for (its "mode" metadata, where present: tensor names alone do not
// tell the modes apart, a kv run's LoRA would load into a mode-none decoder and an
// embedding run's tokens into a kv encoder), then names and shapes. Errors start with
// `context` (say "train.init_from: ").
void load_trainable_tensors(Compressor& compressor, const std::string& file, const std::string& context = "");

}  // namespace xcomp
