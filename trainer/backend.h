// The op set a run computes with, chosen by the `backend` config key.
#pragma once

#include <memory>

#include "io/config.h"
#include "model/ops.h"

namespace xcomp {

// "cpu" always; "cuda" when this build has the CUDA backend, else an InputError saying
// so. A CUDA rank takes GPU local_rank % (the GPUs it sees): one GPU per rank when a node
// starts as many ranks as it has GPUs (more ranks share them, with a warning), its
// frozen weights stored as `weights` says, its kernels and allocator as `cuda` chooses
// (each `default` there leaves the choice to its XCOMP_CUDA_* variable).
std::unique_ptr<Ops> make_backend(Backend backend, int local_rank = 0, CudaWeights weights = CudaWeights::kBf16,
                                  const CudaConfig& cuda = {});

// Whether this build can run `backend`.
bool backend_available(Backend backend);

}  // namespace xcomp
