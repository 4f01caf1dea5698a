// Data parallelism of the training loop, over a Communicator: every rank holds the whole
// trainable state and trains on its slice of each global batch (io/sampler.h); the
// gradients are summed over ranks once per optimizer step, after accumulation, so the
// update is the same on every rank. The loss is normalised by the target count of the
// whole global batch (global_sum of the per-rank counts), which makes 2 ranks x micro 4,
// 1 rank x micro 8 and 1 rank x 2 accumulation x 4 the same step.
//
// At start-up rank 0's trainable tensors (and optimizer state, after a resume) are
// broadcast; a cheap checksum comparison every kSyncCheckEvery steps and at every
// checkpoint catches ranks that drifted apart (hardware faults, a non-deterministic
// reduction) before they train on for hours.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "comm/communicator.h"
#include "model/compressor.h"
#include "model/ops.h"
#include "model/tensor.h"

namespace xcomp {

class DataParallel {
 public:
  static constexpr int64_t kSyncCheckEvery = 50;

  explicit DataParallel(Communicator& comm) : comm_(comm) {}

  int rank() const { return comm_.rank(); }
  int world_size() const { return comm_.world_size(); }
  // Rank 0 prints, writes metrics and checkpoints.
  bool is_main() const { return comm_.rank() == 0; }

  // Rank 0's values of these host tensors land on every rank (same shapes everywhere).
  void broadcast_from_main(const std::vector<Tensor>& tensors);
  void broadcast_integers_from_main(std::vector<int64_t>& values) {
    comm_.broadcast_bytes(values.data(), values.size() * sizeof(int64_t), 0);
  }
  // Sums a step's gradients over ranks in place: `gradient_buffer`, every gradient end
  // to end (Compressor::gradient_buffer), F32, where `ops` computes. One collective over
  // the buffer, which the communicator cuts in fixed-size buckets. A host buffer, or a
  // device buffer with a communicator that reduces device memory (NCCL), is reduced where
  // it is; a device buffer with a host communicator (MPI) is staged through host memory:
  // one download, the reduction, one upload. With one rank nothing happens, except that a
  // device communicator is still called: a single-GPU run takes the path a multi-GPU one
  // does (NCCL's all-reduce over one rank is a device copy).
  void sum_gradients(Ops& ops, Tensor gradient_buffer);

  // The step's sum as the training loop asks for it: begin_gradient_sum before the last
  // micro-batch (its result is that micro-batch's StepOptions::lora_gradients_ready),
  // finish_gradient_sum after it. Where the communicator reduces device memory (NCCL;
  // overlaps_gradient_sum()) the sum overlaps that backward (DESIGN.md: on GPUs); else
  // the hook is empty and finish_gradient_sum is sum_gradients. Overlapped: as backward
  // reports layers, from the last, the hook
  // starts reducing their LoRA gradients in buckets of at least bucket_elements() (each
  // one contiguous run of the buffer, ordered after the backward work queued so far);
  // finish_gradient_sum, after the step, starts the rest (the compression and AE
  // tokens, the last partial bucket) and makes the backend's later work (clipping, the
  // update) wait for all of it. Every element is reduced once, as by sum_gradients, and
  // a single rank goes through it too. (With MPI on the host a blocking reduction in
  // mid-backward would gain nothing.)
  bool overlaps_gradient_sum() const { return comm_.reduces_device_memory(); }
  std::function<void(int layer)> begin_gradient_sum(Ops& ops, Compressor& compressor);
  void finish_gradient_sum();
  // Host scalars summed over ranks (target counts, loss sums), in place.
  void sum(std::vector<double>& values) { comm_.all_reduce_sum(values.data(), values.size()); }
  // True on every rank when any rank asks to stop (a signal reaches ranks at different
  // moments; all must stop at the same step boundary).
  bool any_rank(bool flag) { return comm_.any(flag); }
  void barrier() { comm_.barrier(); }

  // Whether check_in_sync is due after `step`: with more than one rank, every
  // kSyncCheckEvery steps, or whenever `force`d (at checkpoints). Asked first, so the
  // host copies of device tensors are made only then.
  bool sync_check_due(int64_t step, bool force = false) const {
    return comm_.world_size() > 1 && (force || step % kSyncCheckEvery == 0);
  }
  // Throws std::runtime_error on every rank when the trainable tensors (host tensors)
  // differ between ranks after `step`. Every rank calls it at the same steps.
  void check_in_sync(int64_t step, const std::vector<Tensor>& parameters);

 private:
  // A layer's gradients are final: add them to the pending run, start it once it fills a bucket.
  void layer_gradients_ready(int layer);

  Communicator& comm_;
  Tensor staged_;  // host copy of a device gradient buffer, for a host communicator
  // The overlapped sum in progress: the buffer, whose elements [started_from_, end) are
  // being reduced and [pending_from_, started_from_) are final but not yet started.
  struct OverlappedSum {
    Ops* ops = nullptr;
    Compressor* compressor = nullptr;
    float* buffer = nullptr;
    int64_t started_from = 0, pending_from = 0;
  };
  OverlappedSum overlap_;
};

// FNV-1a over the bytes of the tensors, in order: equal states give equal checksums.
uint64_t tensors_checksum(const std::vector<Tensor>& tensors);

}  // namespace xcomp
