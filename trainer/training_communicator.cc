#include "trainer/training_communicator.h"

#include <glog/logging.h>

#include "comm/mpi_communicator.h"
#if XCOMP_HAVE_NCCL
#include "comm/nccl_communicator.h"
#include "model/cuda/cuda_ops.h"
#endif

namespace xcomp {

std::unique_ptr<Communicator> training_communicator(Backend backend) {
#if XCOMP_HAVE_NCCL
  // Every rank sees the same devices on a homogeneous node, so all ranks take the same
  // branch and the NCCL bootstrap (a collective) is entered by all or none.
  if (backend == Backend::kCuda && cuda_device_count() > 0) {
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
