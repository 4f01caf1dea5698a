#include "comm/mpi_communicator.h"

#include <glog/logging.h>

#include <algorithm>
#include <climits>

#include "comm/mpi_check.h"
#include "comm/process_group.h"

namespace xcomp {

MpiCommunicator::MpiCommunicator(MPI_Comm base, size_t bucket_elements) : bucket_elements_(bucket_elements) {
  // MPI counts are int: a bucket must fit one.
  CHECK(bucket_elements_ > 0 && bucket_elements_ <= static_cast<size_t>(INT_MAX)) << bucket_elements_;
  XCOMP_MPI_CHECK(MPI_Comm_dup(base, &comm_));
  XCOMP_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  XCOMP_MPI_CHECK(MPI_Comm_size(comm_, &world_size_));
}

MpiCommunicator::~MpiCommunicator() {
  // After MPI_Finalize the handle is gone with MPI itself.
  int finalized = 0;
  if (comm_ != MPI_COMM_NULL && MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) MPI_Comm_free(&comm_);
}

void MpiCommunicator::all_reduce(float* data, size_t count, ReduceOp op) {
  for (size_t begin = 0; begin < count; begin += bucket_elements_) {
    const int n = static_cast<int>(std::min(bucket_elements_, count - begin));
    XCOMP_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data + begin, n, MPI_FLOAT, MPI_SUM, comm_));
  }
  if (op == ReduceOp::kAverage && world_size_ > 1) {
    const float scale = 1.0f / static_cast<float>(world_size_);
    for (size_t i = 0; i < count; ++i) data[i] *= scale;
  }
}

void MpiCommunicator::all_reduce_sum(double* data, size_t count) {
  CHECK_LE(count, static_cast<size_t>(INT_MAX));
  XCOMP_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(count), MPI_DOUBLE, MPI_SUM, comm_));
}

void MpiCommunicator::broadcast_bytes(void* data, size_t bytes, int root) {
  auto* at = static_cast<char*>(data);
  for (size_t begin = 0; begin < bytes; begin += static_cast<size_t>(INT_MAX)) {
    const int n = static_cast<int>(std::min(static_cast<size_t>(INT_MAX), bytes - begin));
    XCOMP_MPI_CHECK(MPI_Bcast(at + begin, n, MPI_BYTE, root, comm_));
  }
}

void MpiCommunicator::barrier() { XCOMP_MPI_CHECK(MPI_Barrier(comm_)); }

bool MpiCommunicator::all_equal(uint64_t value) {
  // One reduction gives both extremes: max(v) and max(~v) = ~min(v).
  uint64_t extremes[2] = {value, ~value};
  XCOMP_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, extremes, 2, MPI_UINT64_T, MPI_MAX, comm_));
  return extremes[0] == ~extremes[1];
}

bool MpiCommunicator::any(bool flag) {
  int value = flag ? 1 : 0;
  XCOMP_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT, MPI_MAX, comm_));
  return value != 0;
}

std::unique_ptr<Communicator> world_communicator() {
  if (!mpi_is_running()) return std::make_unique<SingleProcessCommunicator>();
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD);
}

}  // namespace xcomp
