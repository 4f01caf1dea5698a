// The MPI communicator on the ranks of this job: sums and averages across bucket
// boundaries, the same bits on every rank, broadcast from any root, the checksum
// agreement and the stop vote.
#include "comm/mpi_communicator.h"

#include <gtest/gtest.h>

#include <vector>

namespace xcomp {
namespace {

TEST(MpiCommunicator, AllReduceSumsAndAveragesAcrossBuckets) {
  MpiCommunicator comm(MPI_COMM_WORLD, /*bucket_elements=*/3);  // 10 elements: 4 buckets, the last short
  const int world = comm.world_size();
  ASSERT_GE(world, 2) << "run this suite with mpirun -np 2";
  std::vector<float> sum(10), average(10);
  for (int i = 0; i < 10; ++i) sum[i] = average[i] = static_cast<float>(i + 100 * comm.rank());
  comm.all_reduce(sum.data(), sum.size(), ReduceOp::kSum);
  comm.all_reduce(average.data(), average.size(), ReduceOp::kAverage);
  const float rank_total = 100.0f * static_cast<float>(world * (world - 1) / 2);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(sum[i], static_cast<float>(world * i) + rank_total) << i;
    EXPECT_FLOAT_EQ(average[i], (static_cast<float>(world * i) + rank_total) / static_cast<float>(world)) << i;
  }
  std::vector<double> host = {1.5, static_cast<double>(comm.rank())};
  comm.all_reduce_sum(host.data(), host.size());
  EXPECT_EQ(host[0], 1.5 * world);
  EXPECT_EQ(host[1], world * (world - 1) / 2.0);
}

TEST(MpiCommunicator, BroadcastBarrierChecksumAndStopVote) {
  MpiCommunicator comm;
  const int root = comm.world_size() - 1;
  int64_t value = comm.rank() == root ? 4242 : -1;
  comm.broadcast_bytes(&value, sizeof value, root);
  EXPECT_EQ(value, 4242);
  comm.barrier();
  EXPECT_TRUE(comm.all_equal(0xfeedfacecafebeefull));
  EXPECT_FALSE(comm.all_equal(static_cast<uint64_t>(comm.rank())));
  EXPECT_TRUE(comm.any(comm.rank() == root));
  EXPECT_FALSE(comm.any(false));
}

}  // namespace
}  // namespace xcomp
