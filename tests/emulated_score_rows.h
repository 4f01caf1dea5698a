// The batched-product attention's row kernels (model/cuda/score_rows.h) over every score
// row of a shape, a warp a row, in the CPU emulation of their warps
// (tests/emulated_thread_block.h): how the unit suite runs them without a GPU.
#pragma once

#include <cstdint>

#include "model/cuda/score_rows.h"
#include "tests/emulated_thread_block.h"

namespace xcomp::test {

constexpr int kEmulatedRowWarps = 4;  // rows a block in the emulation (the GPU runs 8)

// Runs row_body(executor, row) for every score row of s.
template <class RowBody> void emulate_score_rows(const score_rows::GemmAttentionShape& s, const RowBody& row_body) {
  const int64_t rows = score_rows::score_rows_of(s);
  run_emulated_grid<float>((rows + kEmulatedRowWarps - 1) / kEmulatedRowWarps, 1, 1, kEmulatedRowWarps * 32, 0, false,
                           [&](const EmulatedExecutor<float>& ex, unsigned char*) {
                             const int64_t row = ex.block_x() * kEmulatedRowWarps + ex.warp();
                             if (row < rows) row_body(ex, row);
                           });
}

}  // namespace xcomp::test
