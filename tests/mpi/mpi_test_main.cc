// The mpi suite runs as every rank of `mpirun -np 2` (tests/CMakeLists.txt): MPI for
// the whole process, then GoogleTest. A test's collectives must be called by every
// rank; a failure on any rank fails the job.
#include <glog/logging.h>
#include <gtest/gtest.h>

#include "comm/process_group.h"

int main(int argc, char** argv) {
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  const xcomp::MpiSession mpi(&argc, &argv);
  if (mpi.placement().rank != 0) FLAGS_minloglevel = google::GLOG_WARNING;
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
