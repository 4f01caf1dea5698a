#include "trainer/timing_statistics.h"

#include <glog/logging.h>

#include <algorithm>

namespace xcomp {

double median(std::vector<double> v) {
  CHECK(!v.empty()) << "median of no timings";
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace xcomp
