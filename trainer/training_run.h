// `xcomp train`: the training loop, data parallel over the ranks of the job
// (trainer/data_parallel.h), checkpointed and resumable (trainer/checkpointing.h;
// train.stop_after, SIGTERM/SIGUSR1 stop at a step boundary with a checkpoint). Each
// optimizer step takes `accumulation` micro-batches from the
// loader, runs the compressor step on each (the loss is the mean over every target
// token of the step), clips the global gradient norm, and updates LoRA and the
// compression tokens with AdamW at the scheduled learning rate. Every step's metrics go
// to <run_dir>/metrics.jsonl; validation loss every eval.every steps.
#pragma once

#include <cstdint>

#include "comm/communicator.h"
#include "io/config.h"

namespace xcomp {

struct TrainingResult {
  int64_t steps_done = 0;
  double last_loss = 0;      // mean loss over the last step's targets
  double last_val_loss = -1;  // -1 when never measured
  int64_t skipped_steps = 0;  // non-finite steps skipped (train.nonfinite: skip)
};

// Throws InputError for bad input (missing shards, a tokenizer mismatch, ...) and when a
// non-finite loss stops the run (train.nonfinite: stop), after saving the last good
// trainable state.
TrainingResult run_training(const ExperimentConfig& config);
// The same over a given communicator (run_training uses the world: MPI's when running
// under mpirun/srun, else one rank). Rank 0 writes metrics and checkpoints.
TrainingResult run_training(const ExperimentConfig& config, Communicator& comm);

}  // namespace xcomp
