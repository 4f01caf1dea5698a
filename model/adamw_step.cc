#include "model/adamw_step.h"

namespace xcomp {

void adamw_update_host(float* p, float* m, float* v, const float* g, int64_t n, const AdamWStepScalars& s) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    p[i] *= s.decay_factor;
    m[i] = std::fma(g[i], s.one_minus_beta1, m[i] * s.beta1);
    v[i] = std::fma(s.one_minus_beta2 * g[i], g[i], v[i] * s.beta2);
    const float denom = std::sqrt(v[i]) / s.bias_correction2_sqrt + s.eps;
    p[i] += (-s.step_size * m[i]) / denom;
  }
}

}  // namespace xcomp
