#include "trainer/backend.h"

#include "model/cpu/cpu_ops.h"
#include "model/input_error.h"
#if XCOMP_HAVE_CUDA
#include "model/cuda/cuda_ops.h"
#endif

namespace xcomp {

bool backend_available(Backend backend) {
  if (backend == Backend::kCpu) return true;
  return XCOMP_HAVE_CUDA != 0;
}

std::unique_ptr<Ops> make_backend(Backend backend, int device) {
  switch (backend) {
    case Backend::kCpu:
      return std::make_unique<CpuOps>();
    case Backend::kCuda:
#if XCOMP_HAVE_CUDA
      return make_cuda_ops(device);
#else
      (void)device;
      throw_input_error("backend: cuda is not available in this build (configure with -DXCOMP_CUDA=ON on a machine "
                        "with nvcc)");
#endif
  }
  throw_input_error("backend: unknown backend");
}

}  // namespace xcomp
