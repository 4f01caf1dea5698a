// The one matrix product every CPU op uses: row-major C = alpha op(A) op(B) + beta C, by
// oneDNN's sgemm when the build has it (JIT kernels for the CPU at hand) and by OpenBLAS
// otherwise. Both run on the OpenMP threads of the caller's settings.
#pragma once

#include <cstdint>

namespace xcomp {

// op(A) is [m, k] (A stored [k, m] when trans_a), op(B) is [k, n] (B stored [n, k] when
// trans_b); lda, ldb, ldc are row strides in elements.
void cpu_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
               const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// "oneDNN" or "OpenBLAS".
const char* cpu_sgemm_library();

}  // namespace xcomp
