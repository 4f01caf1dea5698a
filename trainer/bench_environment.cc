#include "trainer/bench_environment.h"

#include <cstdlib>

namespace xcomp {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::string bench_fixtures_dir() { return env_or("XCOMP_FIXTURES", "../shared/fixtures"); }

}  // namespace xcomp
