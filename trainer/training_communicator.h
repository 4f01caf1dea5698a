// The communicator a training run reduces its gradients with, chosen by backend: on the
// CUDA backend NCCL (comm/nccl_communicator.h), so gradients are summed in device memory
// where they live, with MPI underneath for the host-side collectives and the bootstrap;
// on the CPU backend, in a build without NCCL, with no GPU visible (the backend then
// fails with its own message), or with more ranks on a node than GPUs (NCCL needs one
// each; a warning says so), the job's MPI world (a world of one outside mpirun).
#pragma once

#include <memory>

#include "comm/communicator.h"
#include "trainer/backend.h"

namespace xcomp {

// Collective when it builds an NCCL communicator: every rank calls it at the same time.
std::unique_ptr<Communicator> training_communicator(Backend backend);

}  // namespace xcomp
