// The scalars of one AdamW step (torch.optim.AdamW, decoupled weight decay), shared by
// the host optimizer (trainer/adamw.cc) and the device update (model/cuda/cuda_adamw.h),
// so both sides start every step from the same float constants.
//
// Each is computed in double and rounded to float once, as torch does with Python-float
// arguments. (1 - beta2 computed in float from a rounded beta2 is off by 5e-5 relative
// for 0.999.) Per element, in this order:
//   p *= decay_factor
//   m  = fma(g, one_minus_beta1, m * beta1)
//   v  = fma(one_minus_beta2 * g, g, v * beta2)
//   p += (-step_size * m) / (sqrt(v) / bias_correction2_sqrt + eps)
#pragma once

#include <cmath>
#include <cstdint>

namespace xcomp {

struct AdamWStepScalars {
  float decay_factor;           // 1 - lr * weight_decay
  float beta1, one_minus_beta1;
  float beta2, one_minus_beta2;
  float step_size;              // lr / (1 - beta1^step)
  float bias_correction2_sqrt;  // sqrt(1 - beta2^step)
  float eps;
};

// `step` counts from 1 (the first update), as torch's state["step"] after its increment.
inline AdamWStepScalars adamw_step_scalars(double lr, double beta1, double beta2, double eps, double weight_decay,
                                           int64_t step) {
  const double bias_correction1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bias_correction2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  return {static_cast<float>(1.0 - lr * weight_decay),
          static_cast<float>(beta1),
          static_cast<float>(1.0 - beta1),
          static_cast<float>(beta2),
          static_cast<float>(1.0 - beta2),
          static_cast<float>(lr / bias_correction1),
          static_cast<float>(std::sqrt(bias_correction2)),
          static_cast<float>(eps)};
}

// The update of n elements on the host, in the order above (torch.optim.AdamW's
// single-tensor path), so results agree to rounding; model/cuda/cuda_adamw.cu is the
// same update on the device, operation for operation. (In adamw_step.cc: this header is
// also compiled by nvcc, without OpenMP.)
void adamw_update_host(float* p, float* m, float* v, const float* g, int64_t n, const AdamWStepScalars& s);

}  // namespace xcomp
