// What the benchmarks read from the environment.
#pragma once

#include <string>
#include <vector>

namespace xcomp {

// The variable's value, or `fallback` when it is unset or empty.
std::string env_or(const char* name, const std::string& fallback);

// Where the fixtures are: $XCOMP_FIXTURES, else ../shared/fixtures (run from the checkout).
std::string bench_fixtures_dir();

// The CUDA attention kernels a benchmark compares by default: every choice the config's
// cuda.attention offers but `default` (io/config_enums.cc).
std::vector<std::string> cuda_attention_kernel_names();

}  // namespace xcomp
