// The batched-product attention's row kernels (model/cuda/score_rows.h) over every score
// row of a shape or of one of its query blocks, a warp a row, in the CPU emulation of
// their warps (tests/emulated_thread_block.h): how the unit suite runs them without a GPU.
#pragma once

#include <cstdint>

#include "model/cuda/score_rows.h"
#include "tests/emulated_thread_block.h"

namespace xcomp::test {

constexpr int kEmulatedRowWarps = 4;  // rows a block in the emulation (the GPU runs 8)

// Runs row_body(executor, row_of(j)) for j < rows, a warp each.
template <class RowOf, class RowBody> void emulate_rows(int64_t rows, const RowOf& row_of, const RowBody& row_body) {
  run_emulated_grid<float>((rows + kEmulatedRowWarps - 1) / kEmulatedRowWarps, 1, 1, kEmulatedRowWarps * 32, 0, false,
                           [&](const EmulatedExecutor<float>& ex, unsigned char*) {
                             const int64_t j = ex.block_x() * kEmulatedRowWarps + ex.warp();
                             if (j < rows) row_body(ex, row_of(j));
                           });
}

// Runs row_body(executor, row) for every score row of s.
template <class RowBody> void emulate_score_rows(const score_rows::GemmAttentionShape& s, const RowBody& row_body) {
  emulate_rows(score_rows::score_rows_of(s), [](int64_t j) { return j; }, row_body);
}

// Runs row_body(executor, row) for every score row of query block `block` (its queries'
// rows of every (row, head)), mapped as the GPU's per-block launches map them.
template <class RowBody>
void emulate_block_score_rows(const score_rows::GemmAttentionShape& s, int64_t block, const RowBody& row_body) {
  emulate_rows(score_rows::block_score_rows(s, block),
               [&](int64_t j) { return score_rows::block_score_row(s, block, j); }, row_body);
}

}  // namespace xcomp::test
