// AdamW's update on the device: the step trainer/adamw.cc takes on host fp32 masters,
// here in place on device fp32 tensors, so a GPU run can keep its masters and moments on
// the GPU. The caller computes the step's scalars once (adamw_step_scalars in
// model/adamw_step.h, with the step count after its increment: 1 for the first update)
// and calls this for every trainable tensor.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "model/adamw_step.h"

namespace xcomp::cuda {

// For i < n: param[i], exp_avg[i] and exp_avg_sq[i] updated from grad[i] exactly as
// trainer/adamw.cc's update_tensor does (the same operations in the same order, each
// rounded once), queued on `stream`. Device pointers; n == 0 does nothing.
void adamw_update(float* param, float* exp_avg, float* exp_avg_sq, const float* grad, int64_t n,
                  const AdamWStepScalars& scalars, cudaStream_t stream);

}  // namespace xcomp::cuda
