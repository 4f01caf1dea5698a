// The training run's side of checkpoints (io/checkpoint.h has the format): which
// checkpoint `resume` picks, whether the current configuration may continue it, and the
// metrics log trimmed back to the step a resumed run continues from.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "io/checkpoint.h"
#include "io/config.h"

namespace xcomp {

// <run_dir>/checkpoints.
std::string checkpoints_dir_of(const ExperimentConfig& config);

// resume "": none. "auto": the newest good checkpoint in run_dir (none: a fresh start).
// A path: that checkpoint directory (InputError naming the damaged file), or a run or
// checkpoints directory, whose newest good checkpoint is used (InputError when none).
std::optional<Checkpoint> checkpoint_to_resume(const ExperimentConfig& config);

// InputError naming the key when `config` cannot continue `checkpoint`: a key of
// io/config.h resume_incompatible_keys changed, or the global batch (micro_batch x
// accumulation x world size) differs from the one the sampler position was saved with.
void check_resumable(const ExperimentConfig& config, int world_size, const Checkpoint& checkpoint);

// Drops the records of steps after `step` from metrics.jsonl (they belong to the part
// of an interrupted run that the resume repeats), so the file reads as one curve.
void trim_metrics_after(const std::string& path, int64_t step);

}  // namespace xcomp
