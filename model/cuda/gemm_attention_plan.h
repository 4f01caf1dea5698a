// The batched-product attention's plan (cuda_attention_gemm.cu), apart from cuBLAS: where
// each entry of its pointer tables points, and the order of its products and row kernels,
// so that the unit suite runs the same plan on the CPU (a plain batched product and the
// row kernels in the emulation of their warps; tests/unit/gemm_attention_plan_test.cc)
// and the GPU runs it through cublasGemmBatchedEx. Host code but for table_offset, which
// the GPU's table-filling kernel calls too.
//
// The layouts (row-major, as Ops::attention): q, out, dout, dq [B, T, H, D]; k, v, dk, dv
// [B, capacity, kv_heads, D]; query t sees keys [0, length - T + t] whose key_valid is set.
// cuBLAS is column-major: a row-major [R, C] block with row stride ld is a column-major
// [C, R] one with leading dimension ld. For (row b, head h, kv head kh = h / group):
//   S^T [length, T]  = K (D x length)^T . Q (D x T)       gemm(T, N, length, T, D)
//   out^T [D, T]     = V (D x length) . P^T (length x T)  gemm(N, N, D, T, length)
//   dP^T [length, T] = V^T . dout                         gemm(T, N, length, T, D)
//   dq^T [D, T]      = K . dS^T                           gemm(N, N, D, T, length)
//   dk^T [D, length] += Q (D x T) . dS (T x length)       gemm(N, T, D, length, T)
//   dv^T [D, length] += dout . P                          gemm(N, T, D, length, T)
// The last two sum over the `group` query heads of a kv head: on fp32 operands one
// batched call per head of the group (the calls of one batch must not write the same
// output), each adding; on the bf16 copies, which are laid out head-major ([B, H, T, D]),
// one call over all group x T queries of a kv head (below).
//
// Causal query blocks (query_block < T: gemm_causal and gemm_causal_bf16): queries
// [t0, t1) see at most keys [0, length - T + t1), so each block's products run over those
// keys only (the m, n or k above that is `length` becomes that count, and the block's
// rows of q, out, dout, dq and of the score matrices are offset by t0). Entries of a
// score row past its block's keys are never read, nor written but on the bf16 path, whose
// P and dS rows are written as zeros from there to `length` rounded up to 8 (zeros_to):
//  - its dk and dv products run over every query and key at once (K = group x T), one
//    call each instead of group x blocks calls that each read and write the whole fp32 dk
//    or dv (about 1 GB of traffic a layer's backward at LLaMA-3-8B's shape), at the cost
//    of the masked triangle's products;
//  - its other products take their block's keys rounded up to 8 (bf16_key_rows: the
//    copies of k and v hold that many rows a batch row, zeros past `length`), so that no
//    size is odd: the decoder's 497 keys kept cuBLAS on its `align1` kernels; dk and dv
//    likewise where their capacity has the rows.
// With one block the calls are the ones above.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "model/cuda/score_rows.h"

namespace xcomp::gemm_attention {

using score_rows::GemmAttentionShape;

// The pointer tables of one call, entry i = (g * batch + b) * kv_heads + kh for query head
// h = kh * group + g: the first batch x heads entries cover every (row, head), and the
// batch x kv_heads entries from g * batch * kv_heads on are head g of each group. One set
// of tables per query block, pointing at the block's first query.
//   kQ, kK, kV, kDout: the products' operands (the fp32 tensors, or their bf16 copies);
//   kOut, kDq, kDk, kDv: the fp32 results;
//   kScores: S, fp32, as the first product writes it (on the fp32 path P in place after);
//   kProbabilities: P as the products read it (kScores's rows, or bf16 rows of its own);
//   kDp: dP, fp32, as its product writes it (the fp32 path's gradient rows, dS in place
//        after; the bf16 path's kScores rows, S being spent by then);
//   kDs: dS as the products read it (kDp's rows, or bf16 rows of their own).
enum Table { kQ, kK, kV, kDout, kOut, kDq, kDk, kDv, kScores, kProbabilities, kDp, kDs, kTables };

// A key count as the bf16 path's products take it: rounded up to a multiple of 8.
XCOMP_ROWS_FN int64_t bf16_keys(int64_t keys) { return (keys + 7) / 8 * 8; }

// The rows a batch row of the bf16 copies of k and v holds: `length` rounded up so.
XCOMP_ROWS_FN int64_t bf16_key_rows(const GemmAttentionShape& s) { return bf16_keys(s.length); }

// The shape of a call: q [batch, t, heads, d], k and v [batch, capacity, kv_heads, d]
// with `length` entries in use, queries in blocks of query_block (t or more: one block);
// on the bf16 path the row kernels' zeros reach bf16_key_rows.
inline GemmAttentionShape plan_shape(int64_t batch, int64_t t, int64_t heads, int64_t d, int64_t capacity,
                                     int64_t kv_heads, int64_t length, int64_t query_block, bool bf16_operands) {
  GemmAttentionShape s;
  s.batch = batch, s.t = t, s.heads = heads, s.d = d;
  s.capacity = capacity, s.kv_heads = kv_heads, s.length = length, s.group = heads / kv_heads;
  s.query_block = std::min(query_block, t);
  s.score_stride = score_rows::score_row_stride(length);
  s.zeros_to = bf16_operands ? bf16_key_rows(s) : 0;
  return s;
}

// Where entry i of block `block`'s table points, in elements from the table's base. With
// bf16_copies the operands are the bf16 path's copies: kQ and kDout laid out
// [B, H, T, D], kK and kV [B, bf16_key_rows, kv_heads, D].
XCOMP_ROWS_FN int64_t table_offset(const GemmAttentionShape& s, bool bf16_copies, int table, int64_t block,
                                   int64_t i) {
  const int64_t t0 = block * s.query_block;
  const int64_t kh = i % s.kv_heads, b = (i / s.kv_heads) % s.batch, g = i / (s.kv_heads * s.batch);
  const int64_t h = kh * s.group + g;
  switch (table) {
    case kQ:
    case kDout:
      if (bf16_copies) return ((b * s.heads + h) * s.t + t0) * s.d;
      return ((b * s.t + t0) * s.heads + h) * s.d;
    case kOut:
    case kDq: return ((b * s.t + t0) * s.heads + h) * s.d;
    case kK:
    case kV:
      if (bf16_copies) return (b * bf16_key_rows(s) * s.kv_heads + kh) * s.d;
      return (b * s.capacity * s.kv_heads + kh) * s.d;
    case kDk:
    case kDv: return (b * s.capacity * s.kv_heads + kh) * s.d;
    default: return ((b * s.heads + h) * s.t + t0) * s.score_stride;  // the score rows
  }
}

inline int64_t query_blocks_of(const GemmAttentionShape& s) { return (s.t + s.query_block - 1) / s.query_block; }

// One batched product, as cublasGemmBatchedEx takes it (column-major): for entries
// [first, first + count) of block `block`'s tables, C = alpha op(A) op(B) + beta C (C not
// read where beta is 0). C is fp32; A and B are the call's operand type.
struct Product {
  bool transpose_a, transpose_b;
  int64_t m, n, k;
  float alpha;
  Table a;
  int64_t lda;
  Table b;
  int64_t ldb;
  float beta;
  Table c;
  int64_t ldc;
  int64_t block, first, count;
};

// Runs the plan's steps in order: steps.product(Product), steps.softmax(block) (P from S
// at a query block's score rows) and, for the backward, steps.softmax_backward(scale,
// block) (dS from P and dP there). The forward writes out; the backward writes dq and
// adds into dk and dv. bf16_operands: the bf16 path (its copies as table_offset lays them
// out, s from plan_shape with bf16_operands).
//
// A query block's products and row kernels run one after another, block by block: its
// score rows (19 to 57 MB at LLaMA-3-8B's shape, at 128-query blocks) are read back
// right after they are written, while much of them may still be in L2 (50 MB on an
// H100 or H200), where every block's products first and then one row kernel over all
// rows (260 MB) read them all back from memory. Each block's rows and products are the
// ones they were, and the key and value gradients add up in the same order, so the
// results are the same.
template <class Steps> void run(const GemmAttentionShape& s, bool backward, bool bf16_operands, Steps& steps) {
  const int64_t blocks = query_blocks_of(s);
  const int64_t d = s.d, ld_query = s.heads * s.d, ld_key = s.kv_heads * s.d, ld_scores = s.score_stride;
  const int64_t ld_operand = bf16_operands ? s.d : ld_query;  // the head-major copies' rows are D apart
  const int64_t all = s.batch * s.heads, group_count = s.batch * s.kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.d));  // as the CPU backend computes it
  auto rows = [&](int64_t block) { return score_rows::block_queries(s, block); };
  // The keys a block's products take: those its queries can see, rounded up to 8 on the
  // bf16 path (the copies' zero rows and the row kernels' zeros past them).
  auto keys = [&](int64_t block) {
    const int64_t seen = score_rows::block_keys(s, block * s.query_block);
    return bf16_operands ? bf16_keys(seen) : seen;  // at most bf16_key_rows: seen <= length
  };

  for (int64_t i = 0; i < blocks; ++i) {
    // S = scale * q . k^T, then P = masked softmax(S).
    steps.product({true, false, keys(i), rows(i), d, scale, kK, ld_key, kQ, ld_operand, 0.f, kScores, ld_scores, i, 0,
                   all});
    steps.softmax(i);
    if (!backward) {
      steps.product({false, false, d, rows(i), keys(i), 1.f, kV, ld_key, kProbabilities, ld_scores, 0.f, kOut,
                     ld_query, i, 0, all});
      continue;
    }
    // dP = dout . v^T, then dS; dq = dS . k (overwritten); on fp32 operands dk += dS^T . q
    // and dv += P^T . dout (added), a batched call per head of each group.
    steps.product({true, false, keys(i), rows(i), d, 1.f, kV, ld_key, kDout, ld_operand, 0.f, kDp, ld_scores, i, 0,
                   all});
    steps.softmax_backward(scale, i);
    steps.product({false, false, d, rows(i), keys(i), 1.f, kK, ld_key, kDs, ld_scores, 0.f, kDq, ld_query, i, 0, all});
    if (bf16_operands) continue;
    for (int64_t g = 0; g < s.group; ++g) {
      steps.product({false, true, d, keys(i), rows(i), 1.f, kQ, ld_operand, kDs, ld_scores, 1.f, kDk, ld_key, i,
                     g * group_count, group_count});
      steps.product({false, true, d, keys(i), rows(i), 1.f, kDout, ld_operand, kProbabilities, ld_scores, 1.f, kDv,
                     ld_key, i, g * group_count, group_count});
    }
  }
  if (backward && bf16_operands) {
    // One product per (row, kv head) over its group x T queries and every key: the
    // head-major operands and the P and dS rows of a kv head's query heads are each one
    // matrix. Block 0's tables from entry 0 are head 0 of each group, from query 0. Keys
    // rounded up to 8 where dk and dv have the rows (P and dS are zeros there, so those
    // rows gain nothing): no odd size (the decoder's store is made so, compressor.cc).
    const int64_t gradient_keys = std::min(bf16_key_rows(s), s.capacity);
    steps.product({false, true, d, gradient_keys, s.group * s.t, 1.f, kQ, ld_operand, kDs, ld_scores, 1.f, kDk, ld_key,
                   0, 0, group_count});
    steps.product({false, true, d, gradient_keys, s.group * s.t, 1.f, kDout, ld_operand, kProbabilities, ld_scores,
                   1.f, kDv, ld_key, 0, 0, group_count});
  }
}

}  // namespace xcomp::gemm_attention
