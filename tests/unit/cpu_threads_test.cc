// Without MPI a process is alone on its node: `threads: 0` is every online core.
#include "trainer/cpu_threads.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

namespace xcomp {
namespace {

TEST(CpuThreads, ZeroMeansEveryCoreOutsideMpi) {
  EXPECT_EQ(cpu_threads_for(0), std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  EXPECT_EQ(cpu_threads_for(5), 5);
}

}  // namespace
}  // namespace xcomp
