// What the benchmarks read from the environment.
#pragma once

#include <string>
#include <vector>

namespace xcomp {

// The variable's value, or `fallback` when it is unset or empty.
std::string env_or(const char* name, const std::string& fallback);

// Where the fixtures are: $XCOMP_FIXTURES, else ../shared/fixtures (run from the checkout).
std::string bench_fixtures_dir();

// The CUDA backend's attention kernel choices the benchmarks offer (what
// XCOMP_CUDA_ATTENTION takes, model/cuda/cuda_backend.h, less the slow cross-checks):
// checked here so a misspelt name fails before a backend is made, on any machine.
const std::vector<std::string>& cuda_attention_kernel_names();
// An input error naming `option` and the choices unless `kernels` is one of them.
void require_cuda_attention_kernels(const std::string& option, const std::string& kernels);

}  // namespace xcomp
