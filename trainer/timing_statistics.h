// Summaries of repeated timings in the benchmarks.
#pragma once

#include <vector>

namespace xcomp {

// The median (the mean of the middle two for an even count); v must not be empty.
double median(std::vector<double> v);

}  // namespace xcomp
