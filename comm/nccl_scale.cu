#include "comm/nccl_scale.h"

#include <algorithm>

#include "comm/nccl_check.h"


namespace xcomp {

namespace {

__global__ void scale_kernel(float* data, size_t count, float factor) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < count; i += size_t{gridDim.x} * blockDim.x)
    data[i] = __fmul_rn(data[i], factor);  // one rounded product, as on the host
}

}  // namespace

void scale_on_device(float* data, size_t count, float factor, cudaStream_t stream) {
  if (count == 0) return;
  constexpr unsigned kThreads = 256;
  // Grid-stride: more blocks than this only add scheduling cost.
  const unsigned blocks = static_cast<unsigned>(std::min<size_t>((count + kThreads - 1) / kThreads, size_t{1} << 16));
  scale_kernel<<<blocks, kThreads, 0, stream>>>(data, count, factor);
  XCOMP_COMM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace xcomp
