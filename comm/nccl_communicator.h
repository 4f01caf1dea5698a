// The communicator over NCCL, for the CUDA backend: all-reduce of float buffers in DEVICE
// memory on the communicator's own CUDA stream. Everything host-side -- sums of doubles,
// broadcasts, the barrier, the checksum agreement and the stop vote -- goes through the
// host communicator it was built on (MPI in a job, a world of one outside), which also
// carries the bootstrap: rank 0's ncclUniqueId reaches the others by broadcast_bytes.
// Built only with CUDA (and NCCL) found; the library is xcomp_nccl.
//
// Placement: one rank per GPU. The constructor makes device local_rank % device_count
// current (cudaSetDevice) and binds the NCCL communicator to it; every later call sets
// it again, so a rank's thread always works on its own GPU.
//
// Streams and events -- who waits for whom:
//   - The communicator owns one stream, created non-blocking (it never synchronises
//     implicitly with the legacy default stream), and two events, `ready` and `done`
//     (timing disabled: they only order work).
//   - all_reduce_async(data, count, op, after): records `ready` on `after` (the stream
//     that writes `data`: the backend's compute stream, called once the kernels writing
//     those gradients are queued there) and makes the communicator's stream wait for it,
//     then queues the bucketed ncclAllReduce calls (and, for kAverage, a scale kernel per
//     bucket) on the communicator's stream. The host does not wait. Until a wait() (or
//     synchronize()) that comes after it, no stream may read or write data[0, count),
//     and the buffer must stay allocated.
//   - wait(stream): records `done` on the communicator's stream and makes `stream` wait
//     for it on the device (the host does not block). Work queued on `stream` afterwards
//     -- the clip and the optimizer -- sees every reduction started before the wait().
//   - synchronize(): the host blocks until every reduction started so far has finished,
//     then checks NCCL's asynchronous error state.
//   - all_reduce(data, count, op), the blocking Communicator call: cudaDeviceSynchronize
//     first (whichever stream wrote the buffer has finished), the reduction, then
//     synchronize(). On return the values are in place for every stream and the host.
//   So backward can overlap the all-reduce: call all_reduce_async on a group of layers'
//   gradients as soon as backward has queued them (buckets of bucket_elements() inside),
//   keep queueing backward on the compute stream, then wait(compute stream) before the
//   optimizer.
//
// Threading: one host thread drives a communicator (the training thread); every rank
// must issue the same reductions with the same counts in the same order (NCCL matches
// collectives by order). Not thread-safe.
//
// Averages are the sum followed by x *= 1.0f / world_size on the device, the same
// operation MpiCommunicator does on the host (not ncclAvg, which scales each rank's
// input before the sum and so rounds differently): with two ranks the two communicators
// give the same bits. With one rank the sum is the identity and no scaling happens.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <memory>

#include "comm/communicator.h"
#include "comm/process_group.h"

namespace xcomp {

class NcclCommunicator : public Communicator {
 public:
  // 4M floats (16 MiB) a bucket, as MpiCommunicator. NCCL pipelines a large call itself;
  // buckets bound each call so a single one never grows with the model, and are the
  // granularity a caller overlapping with backward can start reductions at.
  static constexpr size_t kDefaultBucketElements = size_t{1} << 22;

  // `host` carries the bootstrap and every host-side operation; `placement` must describe
  // the same world (its rank and world size) and gives the local rank that picks the GPU.
  // CHECKs that a GPU exists and that this node has at least as many GPUs as ranks.
  // With world size > 1 this is a collective: every rank constructs one at the same time.
  NcclCommunicator(std::unique_ptr<Communicator> host, const ProcessPlacement& placement,
                   size_t bucket_elements = kDefaultBucketElements);
  // Waits for queued reductions, then destroys the NCCL communicator (a collective among
  // the ranks of a node: every rank destroys its communicator).
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return host_->rank(); }
  int world_size() const override { return host_->world_size(); }
  // Blocking, on a device buffer (see above). count == 0 does nothing.
  void all_reduce(float* device_data, size_t count, ReduceOp op) override;
  void all_reduce_sum(double* data, size_t count) override { host_->all_reduce_sum(data, count); }
  void broadcast_bytes(void* data, size_t bytes, int root) override { host_->broadcast_bytes(data, bytes, root); }
  void barrier() override { host_->barrier(); }
  bool all_equal(uint64_t value) override { return host_->all_equal(value); }
  bool any(bool flag) override { return host_->any(flag); }
  size_t bucket_elements() const override { return bucket_elements_; }
  bool reduces_device_memory() const override { return true; }
  // all_reduce_async and wait (below) behind the Communicator interface.
  void start_all_reduce(float* device_data, size_t count, ReduceOp op, void* after) override {
    all_reduce_async(device_data, count, op, static_cast<cudaStream_t>(after));
  }
  void wait_for_reductions(void* stream) override { wait(static_cast<cudaStream_t>(stream)); }

  // The asynchronous reduction and its two ways to wait (see above).
  void all_reduce_async(float* device_data, size_t count, ReduceOp op, cudaStream_t after);
  void wait(cudaStream_t stream);
  void synchronize();

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }

 private:
  // Queues the bucketed reduction on stream_, after whatever stream_ already holds.
  void enqueue(float* device_data, size_t count, ReduceOp op);

  std::unique_ptr<Communicator> host_;
  size_t bucket_elements_;
  int device_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;
  cudaEvent_t done_ = nullptr;
};

// The communicator of the whole job on this rank's GPU: over world_communicator() (MPI
// when MPI is running, else a world of one) with the placement MPI reports.
std::unique_ptr<NcclCommunicator> nccl_world_communicator(
    size_t bucket_elements = NcclCommunicator::kDefaultBucketElements);

// The NCCL library's version as NCCL_VERSION_CODE spells it (22809 for 2.28.9): the one
// loaded at run time, which may differ from the headers compiled against.
int nccl_runtime_version();

}  // namespace xcomp
