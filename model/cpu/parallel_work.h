// When a CPU op is worth an OpenMP parallel region. Each region wakes every thread: a
// few microseconds with spinning threads, tens with sleeping ones (OMP_WAIT_POLICY=
// passive), which is more than a decoding step's ops take (stories260K, one token: 64
// elements a row). Below this much work an op runs on the calling thread alone. The
// results do not depend on it: every parallel loop here splits independent rows or
// elements, each computed the same way on any thread.
#pragma once

#include <cstdint>

namespace xcomp {

constexpr int64_t kMinParallelWork = int64_t{1} << 15;  // elements (or multiply-adds)

inline bool worth_parallel(int64_t work) { return work >= kMinParallelWork; }

}  // namespace xcomp
