#include "trainer/cpu_threads.h"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>

#include "comm/process_group.h"

namespace xcomp {

int cpu_threads_for(int64_t requested) {
  if (requested > 0) return static_cast<int>(requested);
  const long cores = std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
  const long ranks_here = mpi_is_running() ? std::max(1, mpi_world_placement().local_size) : 1;
  return static_cast<int>(std::max(1L, cores / ranks_here));
}

void use_cpu_threads(int threads) {
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
}

}  // namespace xcomp
