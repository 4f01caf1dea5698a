#include "trainer/backend.h"

#include <glog/logging.h>

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

#if XCOMP_HAVE_CUDA
namespace {

// The config's choices spelled as the backend takes them ("" for default).
CudaKernelChoices kernel_choices(const CudaConfig& cuda) {
  CudaKernelChoices choices;
  const auto spelled = [](auto choice, auto default_choice) {
    return choice == default_choice ? std::string() : std::string(name_of(choice));
  };
  choices.attention = spelled(cuda.attention, CudaAttentionChoice::kDefault);
  choices.attention_backward = spelled(cuda.attention_backward, CudaAttentionChoice::kDefault);
  choices.causal_block = cuda.causal_block;
  choices.gemm = spelled(cuda.gemm, CudaGemmChoice::kDefault);
  choices.arena = cuda.arena;
  return choices;
}

}  // namespace
#endif

std::unique_ptr<Ops> make_backend(Backend backend, int local_rank, CudaWeights weights, const CudaConfig& cuda) {
  switch (backend) {
    case Backend::kCpu:
      return std::make_unique<CpuOps>();
    case Backend::kCuda: {
#if XCOMP_HAVE_CUDA
      const int count = cuda_device_count();
      if (count == 0) return make_cuda_ops(0, CudaWeightStorage::kBf16);  // fails, saying why
      const int device = local_rank % count;
      if (local_rank >= count)
        LOG(WARNING) << "local rank " << local_rank << " shares GPU " << device << " (" << count
                     << " visible): start at most one rank per GPU";
      LOG(INFO) << "backend cuda: GPU " << device << " of " << count << ", " << name_of(weights) << " weights";
      return make_cuda_ops(device, weights == CudaWeights::kF32 ? CudaWeightStorage::kF32 : CudaWeightStorage::kBf16,
                           kernel_choices(cuda));
#else
      (void)local_rank;
      (void)weights;
      (void)cuda;
      throw_input_error("backend: cuda is not available in this build (configure with -DXCOMP_CUDA=ON on a machine "
                        "with nvcc)");
#endif
    }
  }
  throw_input_error("backend: unknown backend");
}

}  // namespace xcomp
