// The score matrices of the batched-product attention (cuda_attention_gemm.cu): their
// geometry, and the two row kernels between its products, the masked softmax and its
// backward, written once over an executor (as flash_attention_kernels.h) so that the
// unit suite runs them in a CPU emulation of their warps (tests/emulated_thread_block.h)
// and the GPU runs them as CUDA warps, one warp per score row.
//
// Each comes in two forms with the same arithmetic in the same order, so the same
// results to the bit:
//  - in registers (kPerLane entries a lane, rows of up to 32 x kPerLane keys): every
//    load of the row is issued before any is used, so a warp keeps kPerLane loads in
//    flight. Reading the row three times, one load at a time, left the masked softmax at
//    1.7 TB/s of an H200's 4.8 (Nsight Compute, LLaMA-3-8B's shape: 18% of attention's
//    time, its backward another 9% at 3.1 TB/s);
//  - looped: any row length, each lane walking its entries once per pass.
// Lane l owns entries l, l + 32, l + 64, ... of its row; its partial sums run over them
// in that order, then combine across lanes by the butterfly of shuffle_xor(16, 8, 4, 2,
// 1), as block_reduce.cuh's warp_sum.
//
// Both read fp32 score rows and write their result as float (in place, the fp32
// products' path) or as bf16 into rows of their own (Bf16Bits: the bf16 products read
// P and dS rounded, as PyTorch's bf16 attention does); the softmax backward reads P as
// either. The arithmetic is fp32 either way, rounded once, at the store.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__CUDACC__)
#define XCOMP_ROWS_FN __host__ __device__ __forceinline__
#define XCOMP_ROWS_BODY_FN __device__ __forceinline__
#define XCOMP_ROWS_UNROLL _Pragma("unroll")
#else
#define XCOMP_ROWS_FN inline
#define XCOMP_ROWS_BODY_FN inline
#define XCOMP_ROWS_UNROLL
#endif

namespace xcomp::score_rows {

struct GemmAttentionShape {
  int64_t batch, t, heads, kv_heads, d, capacity, length, group;
  int64_t query_block;   // queries per block (t or more: one block)
  int64_t score_stride;  // floats between score rows: score_row_stride(length)
  // Where the row kernels' zeros end: they write a row's entries from its block's keys
  // up to here as zeros (the bf16 rows, which products read past the block's keys: 0 for
  // none).
  int64_t zeros_to = 0;
};

// Score rows are `length` long but start kScoreRowAlignment floats apart. With rows
// exactly `length` apart an odd length (the decoder's: 481 tokens after a 16-entry
// prefix) gives every product an odd leading dimension and every (row, head) matrix a
// base that is only 4-byte aligned, which keeps cuBLAS from its vectorised tensor-core
// kernels (the decoder's plain gemm forward went from 0.638 to 0.607 ms on an H200 at
// LLaMA-3-8B's shape).
constexpr int64_t kScoreRowAlignment = 16;  // 64 bytes
XCOMP_ROWS_FN int64_t score_row_stride(int64_t length) {
  return (length + kScoreRowAlignment - 1) / kScoreRowAlignment * kScoreRowAlignment;
}

// Keys that query t's block multiplies: those its last query can see.
XCOMP_ROWS_FN int64_t block_keys(const GemmAttentionShape& s, int64_t t) {
  const int64_t block_end = (t / s.query_block + 1) * s.query_block;
  return s.length - s.t + (block_end < s.t ? block_end : s.t);
}

// The row of query t of (row b, head h): keys [0, visible) that key_valid allows.
XCOMP_ROWS_FN int64_t visible_keys(const GemmAttentionShape& s, int64_t t) { return s.length - s.t + t + 1; }

// Score rows, ordered [B, H, T]: row r is query r % T of head r / T % H of batch row r /
// (T H).
XCOMP_ROWS_FN int64_t score_rows_of(const GemmAttentionShape& s) { return s.batch * s.heads * s.t; }

// Query block `block`'s queries, and its score rows: those queries' rows of every
// (row b, head h), B x H x queries of them. The row kernels run a block's rows at a time,
// between its products (gemm_attention_plan.h), so that the rows a product just wrote
// are read while they may still be in L2.
XCOMP_ROWS_FN int64_t block_queries(const GemmAttentionShape& s, int64_t block) {
  const int64_t t0 = block * s.query_block;
  return s.t - t0 < s.query_block ? s.t - t0 : s.query_block;
}
XCOMP_ROWS_FN int64_t block_score_rows(const GemmAttentionShape& s, int64_t block) {
  return s.batch * s.heads * block_queries(s, block);
}
// The score row of block `block`'s row j < block_score_rows(s, block).
XCOMP_ROWS_FN int64_t block_score_row(const GemmAttentionShape& s, int64_t block, int64_t j) {
  const int64_t queries = block_queries(s, block);
  return j / queries * s.t + block * s.query_block + j % queries;
}

// The registers per lane a row of `length` keys takes in registers: 4, 8, 16 or 32, or 0
// past 1024 keys (the looped form then). A block's rows are read up to its keys
// (block_keys of any of its queries), so that many is what the block's launch asks for.
// Host code.
inline int row_registers(int64_t length) {
  for (int per_lane = 4; per_lane <= 32; per_lane *= 2)
    if (length <= 32 * int64_t{per_lane}) return per_lane;
  return 0;
}

// Calls f(std::integral_constant<int, P>{}) with P = row_registers(length), which must
// not be 0. Host code.
template <class F> void with_row_registers(int64_t length, F&& f) {
  switch (row_registers(length)) {
    case 4: return f(std::integral_constant<int, 4>{});
    case 8: return f(std::integral_constant<int, 8>{});
    case 16: return f(std::integral_constant<int, 16>{});
    default: return f(std::integral_constant<int, 32>{});
  }
}

// A bf16 entry as its bits (cuBLAS reads such rows as CUDA_R_16BF; the host emulation
// has no __nv_bfloat16). A distinct type, so that an entry's load and store know it.
struct Bf16Bits {
  uint16_t bits;
};

XCOMP_ROWS_FN uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
#endif
}

XCOMP_ROWS_FN float float_of_bits(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
#endif
}

// Rounded to nearest even, as __float2bfloat16_rn and model/half.h's f32_to_bf16 (a NaN
// stays a quiet NaN).
XCOMP_ROWS_FN Bf16Bits to_bf16(float x) {
  const uint32_t bits = float_bits(x);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return Bf16Bits{static_cast<uint16_t>((bits >> 16) | 0x40)};
  return Bf16Bits{static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16)};
}

XCOMP_ROWS_FN float load_entry(const float* p) { return *p; }
XCOMP_ROWS_FN float load_entry(const Bf16Bits* p) { return float_of_bits(uint32_t{p->bits} << 16); }
XCOMP_ROWS_FN void store_entry(float* p, float x) { *p = x; }
XCOMP_ROWS_FN void store_entry(Bf16Bits* p, float x) { *p = to_bf16(x); }

template <class Ex> XCOMP_ROWS_BODY_FN float warp_sum(const Ex& ex, float value) {
XCOMP_ROWS_UNROLL
  for (int offset = 16; offset > 0; offset /= 2) value += ex.shuffle_xor(value, offset);
  return value;
}

template <class Ex> XCOMP_ROWS_BODY_FN float warp_max(const Ex& ex, float value) {
XCOMP_ROWS_UNROLL
  for (int offset = 16; offset > 0; offset /= 2) value = fmaxf(value, ex.shuffle_xor(value, offset));
  return value;
}

// Entries [columns, zeros_to) of row y as zeros (entries a row's block never computes:
// its queries see none of those keys).
template <class Ex, class Out>
XCOMP_ROWS_BODY_FN void zero_past_block(const Ex& ex, const GemmAttentionShape& s, int64_t columns, Out* y) {
  for (int64_t j = columns + ex.lane(); j < s.zeros_to; j += 32) store_entry(y + j, 0.f);
}

// Score row `row` of `scores` into the same row of `probabilities` (the same rows, in
// place, where P is float), up to its block's keys: the masked softmax (0 for keys the
// query does not see; a row that sees none is all zeros, and so is its output). Entries
// past the block's keys are not read, nor written but as zeros_to asks. One warp's call,
// every lane; rows of up to 32 x kPerLane keys.
template <int kPerLane, class Ex, class P>
XCOMP_ROWS_BODY_FN void masked_softmax_row_in_registers(const Ex& ex, const GemmAttentionShape& s,
                                                   const int32_t* key_valid, const float* scores, P* probabilities,
                                                   int64_t row) {
  const int lane = ex.lane();
  const int64_t t = row % s.t, b = row / (s.t * s.heads);
  const int64_t n = visible_keys(s, t), columns = block_keys(s, t);
  const int32_t* valid = key_valid + b * s.capacity;
  const float* x = scores + row * s.score_stride;
  P* y = probabilities + row * s.score_stride;
  zero_past_block(ex, s, columns, y);
  float value[kPerLane];
  bool seen[kPerLane];
XCOMP_ROWS_UNROLL
  for (int i = 0; i < kPerLane; ++i) {
    const int64_t j = lane + 32 * int64_t{i};
    value[i] = j < columns ? x[j] : 0.f;
    seen[i] = j < n && valid[j] != 0;
  }
  float max_score = -INFINITY;
XCOMP_ROWS_UNROLL
  for (int i = 0; i < kPerLane; ++i)
    if (seen[i]) max_score = fmaxf(max_score, value[i]);
  max_score = warp_max(ex, max_score);
  if (max_score == -INFINITY) {
XCOMP_ROWS_UNROLL
    for (int i = 0; i < kPerLane; ++i)
      if (lane + 32 * int64_t{i} < columns) store_entry(y + lane + 32 * int64_t{i}, 0.f);
    return;
  }
  float sum = 0.f;
XCOMP_ROWS_UNROLL
  for (int i = 0; i < kPerLane; ++i) {
    value[i] = seen[i] ? expf(value[i] - max_score) : 0.f;
    if (lane + 32 * int64_t{i} < columns) sum += value[i];
  }
  const float inv = 1.0f / warp_sum(ex, sum);
XCOMP_ROWS_UNROLL
  for (int i = 0; i < kPerLane; ++i)
    if (lane + 32 * int64_t{i} < columns) store_entry(y + lane + 32 * int64_t{i}, value[i] * inv);
}

// The same for rows of any length: three passes over the row, the exponentials computed
// again in the last (the same values; a float row would take them in place, but a bf16
// one must not be rounded twice).
template <class Ex, class P>
XCOMP_ROWS_BODY_FN void masked_softmax_row_looped(const Ex& ex, const GemmAttentionShape& s, const int32_t* key_valid,
                                             const float* scores, P* probabilities, int64_t row) {
  const int lane = ex.lane();
  const int64_t t = row % s.t, b = row / (s.t * s.heads);
  const int64_t n = visible_keys(s, t), columns = block_keys(s, t);
  const int32_t* valid = key_valid + b * s.capacity;
  const float* x = scores + row * s.score_stride;
  P* y = probabilities + row * s.score_stride;
  zero_past_block(ex, s, columns, y);
  float max_score = -INFINITY;
  for (int64_t j = lane; j < n; j += 32)
    if (valid[j]) max_score = fmaxf(max_score, x[j]);
  max_score = warp_max(ex, max_score);
  if (max_score == -INFINITY) {
    for (int64_t j = lane; j < columns; j += 32) store_entry(y + j, 0.f);
    return;
  }
  float sum = 0.f;
  for (int64_t j = lane; j < columns; j += 32) sum += j < n && valid[j] ? expf(x[j] - max_score) : 0.f;
  const float inv = 1.0f / warp_sum(ex, sum);
  for (int64_t j = lane; j < columns; j += 32)  // each lane reads its entries before it writes them
    store_entry(y + j, (j < n && valid[j] ? expf(x[j] - max_score) : 0.f) * inv);
}

// Row `row` of dS = scale * P * (dP - sum_j P_j dP_j), the gradient with respect to the
// unscaled products q . k, from P (float or bf16) and dP (float; past the block's keys
// never written) into `grads` (float in place of dP, or bf16 rows of their own); up to
// the block's keys. One warp's call; rows of up to 32 x kPerLane keys.
template <int kPerLane, class Ex, class P, class G>
XCOMP_ROWS_BODY_FN void softmax_backward_row_in_registers(const Ex& ex, const GemmAttentionShape& s, float scale,
                                                     const P* probabilities, const float* dp, G* grads,
                                                     int64_t row) {
  const int lane = ex.lane();
  const int64_t columns = block_keys(s, row % s.t);
  const P* p = probabilities + row * s.score_stride;
  const float* dp_row = dp + row * s.score_stride;
  G* g = grads + row * s.score_stride;
  zero_past_block(ex, s, columns, g);
  float p_value[kPerLane], g_value[kPerLane];
XCOMP_ROWS_UNROLL
  for (int i = 0; i < kPerLane; ++i) {
    const int64_t j = lane + 32 * int64_t{i};
    p_value[i] = j < columns ? load_entry(p + j) : 0.f;
    g_value[i] = j < columns ? dp_row[j] : 0.f;
  }
  float dot = 0.f;
XCOMP_ROWS_UNROLL
  for (int i = 0; i < kPerLane; ++i)
    if (lane + 32 * int64_t{i} < columns) dot += p_value[i] * g_value[i];
  dot = warp_sum(ex, dot);
XCOMP_ROWS_UNROLL
  for (int i = 0; i < kPerLane; ++i)
    if (lane + 32 * int64_t{i} < columns)
      store_entry(g + lane + 32 * int64_t{i}, scale * p_value[i] * (g_value[i] - dot));
}

// The same for rows of any length.
template <class Ex, class P, class G>
XCOMP_ROWS_BODY_FN void softmax_backward_row_looped(const Ex& ex, const GemmAttentionShape& s, float scale,
                                               const P* probabilities, const float* dp, G* grads, int64_t row) {
  const int lane = ex.lane();
  const int64_t columns = block_keys(s, row % s.t);
  const P* p = probabilities + row * s.score_stride;
  const float* dp_row = dp + row * s.score_stride;
  G* g = grads + row * s.score_stride;
  zero_past_block(ex, s, columns, g);
  float dot = 0.f;
  for (int64_t j = lane; j < columns; j += 32) dot += load_entry(p + j) * dp_row[j];
  dot = warp_sum(ex, dot);
  for (int64_t j = lane; j < columns; j += 32) store_entry(g + j, scale * load_entry(p + j) * (dp_row[j] - dot));
}

}  // namespace xcomp::score_rows
