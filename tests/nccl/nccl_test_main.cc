// The nccl suite (tests/CMakeLists.txt). Under mpirun/srun it runs as every rank of the
// job: MPI for the whole process, then GoogleTest, and a test's collectives are called by
// every rank. Started plainly it is a world of one without MPI: the NCCL path alone, for
// a machine where MPI cannot start (tools/gpu_check.sh runs it both ways);
// XCOMP_TESTS_MPI_SINGLETON=1 starts MPI anyway, as an MPI singleton.
//
// --gtest_output=json:PATH: rank 0 writes PATH, rank r > 0 PATH with ".rank<r>" before
// the extension, so the ranks of one job do not overwrite each other's reports.
#include <glog/logging.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "comm/process_group.h"

namespace {

std::string per_rank_output(const std::string& output, int rank) {
  const size_t colon = output.find(':');
  if (rank == 0 || colon == std::string::npos || output.back() == '/') return output;  // no file named
  const std::string suffix = ".rank" + std::to_string(rank);
  const size_t slash = output.find_last_of('/');
  const size_t dot = output.find_last_of('.');
  if (dot == std::string::npos || dot < colon || (slash != std::string::npos && dot < slash)) return output + suffix;
  return output.substr(0, dot) + suffix + output.substr(dot);
}

}  // namespace

int main(int argc, char** argv) {
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  const char* singleton = std::getenv("XCOMP_TESTS_MPI_SINGLETON");
  std::optional<xcomp::MpiSession> mpi;
  if (xcomp::launched_by_mpi() || (singleton != nullptr && std::string(singleton) == "1")) {
    mpi.emplace(&argc, &argv);
    if (mpi->placement().rank != 0) FLAGS_minloglevel = google::GLOG_WARNING;
  }
  // Before GoogleTest reads them (it sets its report up while parsing).
  std::vector<std::string> args(argv, argv + argc);
  const std::string output_flag = "--gtest_output=";
  for (std::string& arg : args)
    if (mpi && arg.rfind(output_flag, 0) == 0)
      arg = output_flag + per_rank_output(arg.substr(output_flag.size()), mpi->placement().rank);
  std::vector<char*> arg_pointers;
  for (std::string& arg : args) arg_pointers.push_back(arg.data());
  arg_pointers.push_back(nullptr);
  int arg_count = argc;
  ::testing::InitGoogleTest(&arg_count, arg_pointers.data());
  return RUN_ALL_TESTS();
}
