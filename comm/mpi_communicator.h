// The communicator over MPI, for the CPU backend: host buffers, MPI_Allreduce in fixed-
// size buckets. Works on a duplicate of the given communicator, so its messages never
// mix with anyone else's.
#pragma once

#include <mpi.h>

#include <memory>

#include "comm/communicator.h"

namespace xcomp {

class MpiCommunicator : public Communicator {
 public:
  // 4M floats (16 MiB) a bucket: big enough that per-message latency vanishes, small
  // enough that MPI's own temporary buffers stay modest.
  static constexpr size_t kDefaultBucketElements = size_t{1} << 22;

  explicit MpiCommunicator(MPI_Comm base = MPI_COMM_WORLD, size_t bucket_elements = kDefaultBucketElements);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  void all_reduce(float* data, size_t count, ReduceOp op) override;
  void all_reduce_sum(double* data, size_t count) override;
  void broadcast_bytes(void* data, size_t bytes, int root) override;
  void barrier() override;
  bool all_equal(uint64_t value) override;
  bool any(bool flag) override;
  size_t bucket_elements() const override { return bucket_elements_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int world_size_ = 1;
  size_t bucket_elements_;
};

// The communicator of the whole job: MPI's world when MPI is running, else a world of one.
std::unique_ptr<Communicator> world_communicator();

}  // namespace xcomp
