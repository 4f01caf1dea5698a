#include "trainer/bench_environment.h"

#include <algorithm>
#include <cstdlib>

#include "model/input_error.h"

namespace xcomp {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::string bench_fixtures_dir() { return env_or("XCOMP_FIXTURES", "../shared/fixtures"); }

const std::vector<std::string>& cuda_attention_kernel_names() {
  static const std::vector<std::string> names{"gemm", "gemm_causal", "flash", "flash_bf16", "tiled"};
  return names;
}

void require_cuda_attention_kernels(const std::string& option, const std::string& kernels) {
  const std::vector<std::string>& names = cuda_attention_kernel_names();
  if (std::find(names.begin(), names.end(), kernels) != names.end()) return;
  std::string list;
  for (const std::string& name : names) list += (list.empty() ? "" : ", ") + name;
  throw_input_error(option, ": expected one of ", list, "; got '", kernels, "'");
}

}  // namespace xcomp
