#include "comm/process_group.h"

#include <glog/logging.h>

#include <cstdlib>
#include <optional>

#include "comm/mpi_check.h"

namespace xcomp {

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  XCOMP_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  CHECK_GE(provided, MPI_THREAD_FUNNELED) << "the MPI library cannot host a threaded process";
  placement_ = mpi_world_placement();
}

MpiSession::~MpiSession() {
  int finalized = 0;
  if (MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) MPI_Finalize();
}

void abort_job(int code) {
  XCOMP_MPI_CHECK(MPI_Abort(MPI_COMM_WORLD, code));
  std::_Exit(code);  // MPI_Abort does not return; this only satisfies [[noreturn]]
}

bool mpi_is_running() {
  int initialized = 0, finalized = 0;
  XCOMP_MPI_CHECK(MPI_Initialized(&initialized));
  XCOMP_MPI_CHECK(MPI_Finalized(&finalized));
  return initialized && !finalized;
}

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"})
    if (std::getenv(name) != nullptr) return true;
  return false;
}

ProcessPlacement mpi_world_placement() {
  CHECK(mpi_is_running()) << "MPI is not initialised";
  // The node split below is a collective over MPI_COMM_WORLD. MpiSession's constructor
  // makes the first call, on every rank at once; later calls return that answer, so code
  // running on some ranks only (a rank-0-alone training in the tests, say) can ask
  // without waiting for ranks that never will. A process's place never changes.
  static std::optional<ProcessPlacement> known;
  if (known) return *known;
  ProcessPlacement p;
  XCOMP_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &p.rank));
  XCOMP_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &p.world_size));
  // The ranks that share memory with this one are the ones on this node.
  MPI_Comm node = MPI_COMM_NULL;
  XCOMP_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, p.rank, MPI_INFO_NULL, &node));
  XCOMP_MPI_CHECK(MPI_Comm_rank(node, &p.local_rank));
  XCOMP_MPI_CHECK(MPI_Comm_size(node, &p.local_size));
  XCOMP_MPI_CHECK(MPI_Comm_free(&node));
  known = p;
  return p;
}

}  // namespace xcomp
