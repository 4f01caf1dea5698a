// Under mpirun the ranks of one node share its cores: `threads: 0` gives each rank its
// share, not every core (ranks that each took every core oversubscribed a 2-core box).
#include "trainer/cpu_threads.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

#include "comm/process_group.h"

namespace xcomp {
namespace {

TEST(CpuThreads, ZeroMeansThisRanksShareOfTheNode) {
  const ProcessPlacement here = mpi_world_placement();
  ASSERT_GE(here.local_size, 2) << "run this suite with mpirun -np 2 on one node";
  const long cores = std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
  EXPECT_EQ(cpu_threads_for(0), std::max(1L, cores / here.local_size));
  EXPECT_EQ(cpu_threads_for(3), 3);  // an explicit count is taken as given
}

}  // namespace
}  // namespace xcomp
