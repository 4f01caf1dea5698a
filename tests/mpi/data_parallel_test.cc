// DataParallel on the ranks of this job: gradients summed across tensors and bucket
// boundaries, rank 0's parameters broadcast, and drifted replicas caught on every rank.
#include "trainer/data_parallel.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "comm/mpi_communicator.h"
#include "model/cpu/cpu_ops.h"

namespace xcomp {
namespace {

Tensor filled(Shape shape, float value) {
  Tensor t = Tensor::zeros(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = value + static_cast<float>(i);
  return t;
}

TEST(DataParallel, SumsAGradientBufferOverRanksAcrossTensorsAndBuckets) {
  MpiCommunicator comm(MPI_COMM_WORLD, /*bucket_elements=*/5);  // 7 + 4 elements: three buckets
  DataParallel parallel(comm);
  const float r = static_cast<float>(comm.rank());
  // Two gradients, views of one buffer, as Compressor lays them out.
  Tensor buffer = Tensor::zeros({11});
  Tensor first = buffer.slice0(0, 7), second = buffer.slice0(7, 11).reshape({2, 2});
  for (int64_t i = 0; i < 7; ++i) first.data<float>()[i] = 10 * r + static_cast<float>(i);
  for (int64_t i = 0; i < 4; ++i) second.data<float>()[i] = -r + static_cast<float>(i);
  CpuOps ops;
  parallel.sum_gradients(ops, buffer);
  const int world = comm.world_size();
  const float rank_sum = static_cast<float>(world * (world - 1) / 2);
  for (int64_t i = 0; i < 7; ++i) EXPECT_EQ(first.data<float>()[i], 10 * rank_sum + world * i) << i;
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(second.data<float>()[i], -rank_sum + world * i) << i;
}

TEST(DataParallel, BroadcastsRankZerosParametersAndCatchesDrift) {
  MpiCommunicator comm;
  DataParallel parallel(comm);
  std::vector<Tensor> params = {filled({3}, static_cast<float>(comm.rank())), filled({2}, 5.0f)};
  // A check is due every kSyncCheckEvery steps and at checkpoints (forced); different
  // replicas are caught by it on every rank.
  EXPECT_FALSE(parallel.sync_check_due(DataParallel::kSyncCheckEvery + 1));
  EXPECT_TRUE(parallel.sync_check_due(DataParallel::kSyncCheckEvery));
  EXPECT_TRUE(parallel.sync_check_due(3, /*force=*/true));
  EXPECT_THROW(parallel.check_in_sync(DataParallel::kSyncCheckEvery, params), std::runtime_error);
  parallel.broadcast_from_main(params);
  EXPECT_EQ(params[0].data<float>()[2], 2.0f);
  EXPECT_NO_THROW(parallel.check_in_sync(DataParallel::kSyncCheckEvery, params));
  std::vector<int64_t> position = {comm.rank() == 0 ? 42 : -1, 7};
  parallel.broadcast_integers_from_main(position);
  EXPECT_EQ(position, (std::vector<int64_t>{42, 7}));
}

}  // namespace
}  // namespace xcomp
