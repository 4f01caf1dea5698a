// The collective operations data-parallel training needs, over some transport: MPI for
// the CPU backend (comm/mpi_communicator.h), NCCL for the CUDA backend
// (comm/nccl_communicator.h). Every rank calls the same operations in the same order with
// the same sizes; a call returns when this rank's part is done.
//
// Buffers live where the backend keeps its tensors: host memory for MPI, device memory
// for NCCL. The small host-side operations (counts, checksums, flags) always take host
// values, so a NCCL communicator can keep an MPI one for them and for its bootstrap (the
// NCCL unique id travels from rank 0 by broadcast_bytes).
#pragma once

#include <cstddef>
#include <cstdint>

namespace xcomp {

enum class ReduceOp {
  kSum,
  kAverage,  // the sum divided by the world size
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // In place: every rank ends with the element-wise sum (or average) over ranks, the
  // same bits on every rank. Large buffers go in buckets of bucket_elements() so no
  // single message grows with the model.
  virtual void all_reduce(float* data, size_t count, ReduceOp op) = 0;
  // The same, started without waiting where the transport allows: the reduction is
  // ordered after the work queued so far on the compute stream `after` (an opaque handle,
  // Ops::stream_handle()) and is in place for work queued on `stream` after
  // wait_for_reductions(stream). In between, nothing may touch data[0, count). Where
  // there is no such stream (MPI on host memory) the default reduces at once.
  virtual void start_all_reduce(float* data, size_t count, ReduceOp op, void* after) {
    (void)after;
    all_reduce(data, count, op);
  }
  virtual void wait_for_reductions(void* stream) { (void)stream; }
  // Host values (loss sums, token counts): the element-wise sum over ranks, in place.
  virtual void all_reduce_sum(double* data, size_t count) = 0;
  // Rank `root`'s bytes land on every rank.
  virtual void broadcast_bytes(void* data, size_t bytes, int root) = 0;
  virtual void barrier() = 0;
  // The cheap check that ranks hold the same state: true on every rank when every rank
  // passed the same value (a checksum), false on every rank otherwise.
  virtual bool all_equal(uint64_t value) = 0;
  // True on every rank when any rank passed true (a stop request seen by one rank).
  virtual bool any(bool flag) = 0;

  virtual size_t bucket_elements() const = 0;
  // Whether all_reduce takes device memory (NCCL) rather than host memory (MPI).
  virtual bool reduces_device_memory() const { return false; }
};

// A world of one: every collective is the identity. For runs outside MPI (library use,
// tests) and for a rank that computes something alone.
class SingleProcessCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void all_reduce(float*, size_t, ReduceOp) override {}
  void all_reduce_sum(double*, size_t) override {}
  void broadcast_bytes(void*, size_t, int) override {}
  void barrier() override {}
  bool all_equal(uint64_t) override { return true; }
  bool any(bool flag) override { return flag; }
  size_t bucket_elements() const override { return 0; }
};

}  // namespace xcomp
