#include "trainer/training_communicator.h"

#include <glog/logging.h>

#include "comm/mpi_communicator.h"
#include "comm/process_group.h"
#if XCOMP_HAVE_NCCL
#include "comm/nccl_communicator.h"
#include "model/cuda/cuda_ops.h"
#endif

namespace xcomp {

std::unique_ptr<Communicator> training_communicator(Backend backend) {
#if XCOMP_HAVE_NCCL
  // Every rank sees the same devices on a homogeneous node, so all ranks take the same
  // branch and the NCCL bootstrap (a collective) is entered by all or none.
  const int gpus = backend == Backend::kCuda ? cuda_device_count() : 0;
  if (gpus > 0) {
    const ProcessPlacement placement = mpi_is_running() ? mpi_world_placement() : ProcessPlacement{};
    if (placement.local_size > gpus) {
      // NCCL refuses two ranks on one GPU; ranks sharing GPUs (a test setup) still train,
      // their gradients staged through host memory and summed over MPI.
      LOG_IF(WARNING, placement.rank == 0) << placement.local_size << " ranks on a node with " << gpus
                                           << " GPU(s): NCCL needs a GPU per rank, so gradients are summed over MPI "
                                              "through host memory";
      return world_communicator();
    }
    std::unique_ptr<NcclCommunicator> nccl = nccl_world_communicator();
    LOG_IF(INFO, nccl->rank() == 0) << "gradients all-reduced by NCCL " << nccl_runtime_version() << " over "
                                    << nccl->world_size() << " rank(s)";
    return nccl;
  }
#else
  (void)backend;
#endif
  return world_communicator();
}

}  // namespace xcomp
