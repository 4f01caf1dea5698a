// The op set a run computes with, chosen by the `backend` config key.
#pragma once

#include <memory>

#include "io/config.h"
#include "model/ops.h"

namespace xcomp {

// "cpu" always; "cuda" on GPU `device` when this build has the CUDA backend, else an
// InputError saying so.
std::unique_ptr<Ops> make_backend(Backend backend, int device = 0);

// Whether this build can run `backend`.
bool backend_available(Backend backend);

}  // namespace xcomp
