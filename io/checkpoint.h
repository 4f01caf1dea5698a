// Checkpoints of a training run, as DESIGN.md lays them out:
//
//   <run_dir>/checkpoints/step_00000123/trainable.safetensors   fp32 trainable tensors
//                                       optimizer.safetensors   AdamW moments and step
//                                       state.json              everything else
//   <run_dir>/checkpoints/latest                                "step_00000123"
//
// trainable.safetensors holds the tensors under Compressor::parameters() names with
// metadata format=xcomp-trainable and mode=kv|embedding|none (the same file a finished run
// leaves as <run_dir>/trainable.safetensors). state.json holds format_version, step,
// samples_seen, the sampler state (io/sampler.h), the seeds of the counter-based random
// streams, the world size, the resolved config YAML, the sha256 of every other file, and
// its own sha256 (over its JSON without that key), so any flipped byte is noticed.
//
// Writing goes to step_00000123.tmp/ (each file fsynced), which is renamed into place
// (directory fsynced) before `latest` is replaced atomically; a crash at any moment
// leaves the previous checkpoints intact. Then only the newest `keep` are kept.
// Reading verifies every digest; a damaged checkpoint is reported by name and the newest
// good one is used.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "io/sampler.h"
#include "model/tensor.h"

namespace xcomp {

constexpr int64_t kCheckpointFormatVersion = 1;

// What state.json records beside the digests.
struct CheckpointState {
  int64_t step = 0;          // optimizer steps done
  int64_t samples_seen = 0;  // step x global batch
  SamplerState sampler;      // where the next step's global batch starts
  // Randomness is counter-based: dropout from (seed, step, micro-batch), the data order
  // from (shuffle_seed, epoch). The seeds and the position are the whole RNG state.
  int64_t seed = 0;
  int64_t shuffle_seed = 0;
  int64_t world_size = 1;
  int64_t skipped_steps = 0;  // non-finite steps skipped so far
  std::string config_yaml;    // io/config.h resolved_config_yaml of the run that wrote it
};

struct CheckpointTensors {
  std::vector<std::pair<std::string, Tensor>> trainable;  // F32
  std::string mode;                                       // "kv" or "embedding"
  std::vector<std::pair<std::string, Tensor>> optimizer;  // AdamW::state_tensors()
};

// A checkpoint read back and verified. The tensors are views of the mapped files.
struct Checkpoint {
  std::string path;  // the step_XXXXXXXX directory
  CheckpointState state;
  std::map<std::string, Tensor> trainable;
  std::map<std::string, std::string> trainable_metadata;
  std::map<std::string, Tensor> optimizer;
};

// "step_00000123".
std::string checkpoint_dir_name(int64_t step);

// Writes a checkpoint of `state.step` under `checkpoints_dir` (created if needed), points
// `latest` at it and removes all but the newest `keep` (and any left by a crashed write,
// and any of later steps: after resuming from an older checkpoint they are another
// timeline). Returns the new directory. InputError naming the file on an I/O failure.
std::string write_checkpoint(const std::string& checkpoints_dir, const CheckpointState& state,
                             const CheckpointTensors& tensors, int64_t keep);

// Reads and verifies one checkpoint directory; InputError naming the damaged or missing
// file otherwise.
Checkpoint read_checkpoint(const std::string& dir);

// The checkpoint `latest` names when it verifies, else the newest one that does (each
// damaged one logged as a warning by name); nullopt when there is none.
std::optional<Checkpoint> newest_good_checkpoint(const std::string& checkpoints_dir);

}  // namespace xcomp
