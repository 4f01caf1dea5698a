// How many CPU threads a command's OpenMP and OpenBLAS pools get. One place, because
// train, eval and bench must agree: under mpirun several ranks share a node, and ranks
// that each take every core oversubscribe it (on a 2-core box two ranks of two spinning
// OpenMP threads made a step ~10x slower).
#pragma once

#include <cstdint>

namespace xcomp {

// `requested` threads when it is positive; 0 means this rank's share of the node: the
// online cores divided by the ranks on this node (MPI's local size when MPI is running),
// at least 1.
int cpu_threads_for(int64_t requested);

// Sizes the OpenMP pool (which oneDNN uses too) and OpenBLAS's pool to `threads`.
void use_cpu_threads(int threads);

}  // namespace xcomp
