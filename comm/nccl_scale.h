// The one kernel the NCCL communicator needs: the average's division by the world size,
// as MpiCommunicator does it on the host (x *= 1.0f / world), so the two give the same bits.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace xcomp {

// data[i] *= factor for i < count (device pointer), queued on `stream`.
void scale_on_device(float* data, size_t count, float factor, cudaStream_t stream);

}  // namespace xcomp
