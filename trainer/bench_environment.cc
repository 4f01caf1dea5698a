#include "trainer/bench_environment.h"

#include <cstdlib>

#include "io/config_schema.h"

namespace xcomp {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::string bench_fixtures_dir() { return env_or("XCOMP_FIXTURES", "../shared/fixtures"); }

std::vector<std::string> cuda_attention_kernel_names() {
  std::vector<std::string> names;
  for (const auto& spelling : enum_spellings<CudaAttentionChoice>())
    if (spelling.value != CudaAttentionChoice::kDefault) names.push_back(spelling.name);
  return names;
}

}  // namespace xcomp
