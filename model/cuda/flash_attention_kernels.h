// FlashAttention-2 style grouped-query causal attention on tensor cores (fp32 softmax and
// accumulation; Ops::attention's visibility rule), written once for two executors: a
// CUDA thread block (cuda_attention_flash.cu) and a CPU emulation of one
// (tests/emulated_thread_block.h), which runs this same code, barriers included, so that
// the unit suite checks the kernels' indexing, masking and synchronisation against the
// CPU backend on machines without a GPU.
//
// A body is a template over its executor, which gives the thread's lane and warp, the
// block's index, sync() (__syncthreads), sync_warp() (__syncwarp), shuffle_xor
// (__shfl_xor_sync over the whole warp), the products' operand type (Ex::Operand: float,
// taken as TF32 in 16x16x8 fragments, or bf16 in 16x16x16 ones, Ex::kStep the fragments'
// depth) with to_operand(float), and fragments with load, fill, mma and store
// (nvcuda::wmma on the GPU). The bodies touch fragments only through those calls, never
// element by element, so nothing here depends on the fragments' register layout.
// Operand tiles in shared memory hold q, k, v, dout and the probabilities or score
// gradients a second product reads, converted once as they are written (bf16: rounded to
// nearest even, the precision PyTorch's bf16 attention has); scores, softmax and
// accumulators stay fp32.
//
// Blocks of kWarps warps own kOwnRows rows (queries for the forward and dq, keys for dk
// and dv), 16 per warp, and walk through the other side kStreamRows rows at a time; the
// scores of a warp's 16 rows against the streamed rows are stored to shared memory,
// where plain code applies the mask and the softmax and writes the next product's
// operands. No kernel writes an output another block writes (no atomics, a fixed order):
//  - forward: per query tile, a pass for each query's log-sum-exp, then one for
//    out = sum_j exp(score_j - lse) v_j (three products instead of two, and no
//    rescaling of an accumulator whose layout the code does not know);
//  - backward_query: per query tile, a pass for the log-sum-exp and
//    D = sum_j P_j dP_j (dP = dout v^T, both rescaled online as scalars), kept in memory
//    for backward_key_value, then dq = sum_j dS_j k_j with dS = P (dP - D) scale;
//  - backward_key_value: per key tile of a kv head, over the group's heads and the query
//    tiles that see its keys: dv += P^T dout and dk += dS^T q, added to dk and dv (twice
//    the warps, kKeyValueThreads: a pair per 16 keys, one for dv and one for dk).
// Each kernel's accumulators leave through a staging area of fp32 rows that overlays its
// operand tiles once every warp is done with them (a block barrier), then go to global
// memory row by row (head_dim may be less than the padded tile, and rows past the end
// are not written). Scores are scale * (q . k) as the CPU backend computes them.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#if defined(__CUDACC__)
#define XCOMP_FLASH_FN __device__ __forceinline__
#define XCOMP_FLASH_CONSTEXPR constexpr __host__ __device__
#define XCOMP_FLASH_UNROLL _Pragma("unroll")
#else
#define XCOMP_FLASH_FN inline
#define XCOMP_FLASH_CONSTEXPR constexpr
#define XCOMP_FLASH_UNROLL
#endif

namespace xcomp::flash {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kOwnRows = 16 * kWarps;  // a block's own queries or keys
constexpr int kStreamRows = 32;        // the other side's rows per step
constexpr int kScoreStride = kStreamRows + 8;
constexpr int kMaxHeadDim = 128;

struct Dims {
  int64_t batch, t, heads, d, capacity, kv_heads, group, length;
  float scale;
};

// The dims of Ops::attention's arguments: q [batch, t, heads, d], k and v [batch,
// capacity, kv_heads, d], `length` entries in use. Host code.
inline Dims dims_of_attention(int64_t batch, int64_t t, int64_t heads, int64_t d, int64_t capacity,
                              int64_t kv_heads, int64_t length) {
  Dims s;
  s.batch = batch, s.t = t, s.heads = heads, s.d = d, s.capacity = capacity, s.kv_heads = kv_heads;
  s.group = heads / kv_heads;
  s.length = length;
  s.scale = 1.0f / std::sqrt(static_cast<float>(d));  // as the CPU backend computes it
  return s;
}

// Blocks over `rows` queries (forward, dq) or keys (dk, dv). Host code.
inline int64_t tiles_of(int64_t rows) { return (rows + kOwnRows - 1) / kOwnRows; }

// Calls f(std::integral_constant<int, Dp>{}) with head_dim d padded to the Dp the
// kernels are compiled for: 16, 32, 64 or 128. Host code.
template <class F> void with_padded_head_dim(int64_t d, F&& f) {
  if (d <= 16) return f(std::integral_constant<int, 16>{});
  if (d <= 32) return f(std::integral_constant<int, 32>{});
  if (d <= 64) return f(std::integral_constant<int, 64>{});
  f(std::integral_constant<int, 128>{});
}

// Tiles hold head_dim padded with zeros to Dp, a multiple of 16 (whole fragments), in rows
// of Dp + 8 elements (operands or, staging, floats): a multiple of 16 bytes, as fragment
// loads need, and successive rows start in different banks. Score rows (kScoreStride
// elements) likewise.
template <int Dp> XCOMP_FLASH_CONSTEXPR int tile_stride() { return Dp + 8; }

// Shared memory is carved into regions at 128-byte boundaries (fragment pointers must be
// 32-byte aligned); each body's layout lists its regions, and kBytes is what it takes.
XCOMP_FLASH_CONSTEXPR size_t region_bytes(size_t bytes) { return (bytes + 127) / 128 * 128; }
XCOMP_FLASH_CONSTEXPR size_t larger(size_t a, size_t b) { return a > b ? a : b; }
template <int Dp> XCOMP_FLASH_CONSTEXPR size_t tile_bytes(int rows, size_t element) {
  return region_bytes(rows * tile_stride<Dp>() * element);
}
XCOMP_FLASH_CONSTEXPR size_t score_bytes(int rows, size_t element) {
  return region_bytes(rows * kScoreStride * element);
}
template <class T> XCOMP_FLASH_FN T* region(unsigned char* shared, size_t offset) {
  return reinterpret_cast<T*>(shared + offset);
}

template <int Dp, class Operand> struct ForwardLayout {
  static constexpr size_t kQuery = 0;                                                   // [kOwnRows][stride]
  static constexpr size_t kKey = kQuery + tile_bytes<Dp>(kOwnRows, sizeof(Operand));    // [kStreamRows][stride]
  static constexpr size_t kValue = kKey + tile_bytes<Dp>(kStreamRows, sizeof(Operand));  // [kStreamRows][stride]
  static constexpr size_t kScores = kValue + tile_bytes<Dp>(kStreamRows, sizeof(Operand));  // float [kOwnRows][40]
  static constexpr size_t kProbs = kScores + score_bytes(kOwnRows, sizeof(float));          // [kOwnRows][40]
  static constexpr size_t kLogSumExps = kProbs + score_bytes(kOwnRows, sizeof(Operand));   // float [kOwnRows]
  static constexpr size_t kEnd = kLogSumExps + region_bytes(kOwnRows * sizeof(float));
  static constexpr size_t kBytes = larger(kEnd, tile_bytes<Dp>(kOwnRows, sizeof(float)));  // staging: out
};

template <int Dp, class Operand> struct BackwardQueryLayout {
  static constexpr size_t kQuery = 0;                                                    // [kOwnRows][stride]
  static constexpr size_t kDout = kQuery + tile_bytes<Dp>(kOwnRows, sizeof(Operand));    // [kOwnRows][stride]
  static constexpr size_t kKey = kDout + tile_bytes<Dp>(kOwnRows, sizeof(Operand));      // [kStreamRows][stride]
  static constexpr size_t kValue = kKey + tile_bytes<Dp>(kStreamRows, sizeof(Operand));  // [kStreamRows][stride]
  static constexpr size_t kScores = kValue + tile_bytes<Dp>(kStreamRows, sizeof(Operand));  // float [kOwnRows][40]
  static constexpr size_t kDprobs = kScores + score_bytes(kOwnRows, sizeof(float));         // float [kOwnRows][40]
  static constexpr size_t kDscores = kDprobs + score_bytes(kOwnRows, sizeof(float));        // [kOwnRows][40]
  static constexpr size_t kLogSumExps = kDscores + score_bytes(kOwnRows, sizeof(Operand));  // float [kOwnRows]
  static constexpr size_t kMeans = kLogSumExps + region_bytes(kOwnRows * sizeof(float));    // float [kOwnRows]
  static constexpr size_t kEnd = kMeans + region_bytes(kOwnRows * sizeof(float));
  static constexpr size_t kBytes = larger(kEnd, tile_bytes<Dp>(kOwnRows, sizeof(float)));  // staging: dq
};

template <int Dp, class Operand> struct BackwardKeyValueLayout {
  static constexpr size_t kKey = 0;                                                       // [kOwnRows][stride]
  static constexpr size_t kValue = kKey + tile_bytes<Dp>(kOwnRows, sizeof(Operand));      // [kOwnRows][stride]
  static constexpr size_t kQuery = kValue + tile_bytes<Dp>(kOwnRows, sizeof(Operand));    // [kStreamRows][stride]
  static constexpr size_t kDout = kQuery + tile_bytes<Dp>(kStreamRows, sizeof(Operand));  // [kStreamRows][stride]
  // [kOwnRows keys][40 queries]: scores^T and dP^T (float), then P and dS (operands).
  static constexpr size_t kProbs = kDout + tile_bytes<Dp>(kStreamRows, sizeof(Operand));
  static constexpr size_t kDscores = kProbs + score_bytes(kOwnRows, sizeof(float));
  static constexpr size_t kProbOperands = kDscores + score_bytes(kOwnRows, sizeof(float));
  static constexpr size_t kDscoreOperands = kProbOperands + score_bytes(kOwnRows, sizeof(Operand));
  static constexpr size_t kLogSumExps = kDscoreOperands + score_bytes(kOwnRows, sizeof(Operand));  // [kStreamRows]
  static constexpr size_t kMeans = kLogSumExps + region_bytes(kStreamRows * sizeof(float));      // [kStreamRows]
  static constexpr size_t kEnd = kMeans + region_bytes(kStreamRows * sizeof(float));
  static constexpr size_t kBytes = larger(kEnd, tile_bytes<Dp>(2 * kOwnRows, sizeof(float)));  // staging: dv, dk
};

// Whether query t (of the T newest) of a row sees entry pos; valid_row: the row's key_valid.
XCOMP_FLASH_FN bool visible(const Dims& s, const int32_t* valid_row, int64_t t, int64_t pos) {
  return t < s.t && pos < s.length && pos <= s.length - s.t + t && valid_row[pos] != 0;
}

// tile[r][i] = rows[r * row_stride + i] for r < count and i < d, 0 elsewhere in the
// tile's `tile_rows` x Dp (count may be 0 or less: all zeros), as operands. All Threads
// of the block.
template <int Dp, int Threads = kThreads, class Ex>
XCOMP_FLASH_FN void load_rows(const Ex& ex, const float* rows, int64_t row_stride, int64_t count, int64_t d,
                              int tile_rows, typename Ex::Operand* tile) {
  for (int e = ex.thread(); e < tile_rows * Dp; e += Threads) {
    const int r = e / Dp, i = e % Dp;
    tile[r * tile_stride<Dp>() + i] = ex.to_operand(r < count && i < d ? rows[r * row_stride + i] : 0.f);
  }
}

// The keys and values of one kv head in one row, walked through tiles of kStreamRows.
template <class Operand> struct KeyStream {
  const float* keys;  // entry 0
  const float* values;
  int64_t row_stride, end, d;  // entries from `end` on load as zeros
  Operand* key_tile;
  Operand* value_tile;

  // Entries [k0, k0 + kStreamRows): keys, and values if `with_values`, between two block
  // barriers (the first: every warp is done with the previous tile).
  template <int Dp, class Ex> XCOMP_FLASH_FN void load(const Ex& ex, int64_t k0, bool with_values) const {
    ex.sync();
    load_rows<Dp>(ex, keys + k0 * row_stride, row_stride, end - k0, d, kStreamRows, key_tile);
    if (with_values) load_rows<Dp>(ex, values + k0 * row_stride, row_stride, end - k0, d, kStreamRows, value_tile);
    ex.sync();
  }
};

// out [16][kStreamRows] (rows kScoreStride apart) = a [16][Dp] . b [kStreamRows][Dp]^T,
// a and b tiles with rows tile_stride apart. A warp's call. Each fragment of a is loaded
// once for all column blocks: shared memory's bandwidth, not the tensor cores, bounds
// these small products.
template <int Dp, class Ex>
XCOMP_FLASH_FN void product_with_transposed(const Ex& ex, const typename Ex::Operand* a,
                                            const typename Ex::Operand* b, float* out) {
  constexpr int stride = tile_stride<Dp>();
  constexpr int kBlocks = kStreamRows / 16;
  typename Ex::Accumulator acc[kBlocks];
XCOMP_FLASH_UNROLL
  for (int n = 0; n < kBlocks; ++n) ex.fill(acc[n], 0.f);
XCOMP_FLASH_UNROLL
  for (int k0 = 0; k0 < Dp; k0 += Ex::kStep) {
    typename Ex::MatrixA fa;
    ex.load(fa, a + k0, stride);
XCOMP_FLASH_UNROLL
    for (int n = 0; n < kBlocks; ++n) {
      typename Ex::MatrixBColMajor fb;
      ex.load(fb, b + n * 16 * stride + k0, stride);
      ex.mma(acc[n], fa, fb);
    }
  }
XCOMP_FLASH_UNROLL
  for (int n = 0; n < kBlocks; ++n) ex.store(out + n * 16, acc[n], kScoreStride);
}

// acc[n] += p [16][kStreamRows] (rows kScoreStride apart) . b [kStreamRows][Dp], column
// block n of 16. A warp's call; each fragment of p is loaded once for all column blocks.
template <int Dp, class Ex>
XCOMP_FLASH_FN void accumulate_product(const Ex& ex, typename Ex::Accumulator (&acc)[Dp / 16],
                                       const typename Ex::Operand* p, const typename Ex::Operand* b) {
  constexpr int stride = tile_stride<Dp>();
XCOMP_FLASH_UNROLL
  for (int k0 = 0; k0 < kStreamRows; k0 += Ex::kStep) {
    typename Ex::MatrixA fa;
    ex.load(fa, p + k0, kScoreStride);
XCOMP_FLASH_UNROLL
    for (int n = 0; n < Dp / 16; ++n) {
      typename Ex::MatrixBRowMajor fb;
      ex.load(fb, b + k0 * stride + n * 16, stride);
      ex.mma(acc[n], fa, fb);
    }
  }
}

// The warp's accumulators into its 16 rows of the staging area (`staging`: fp32 rows of
// tile_stride, only this warp's), then rows[r * row_stride + i] = that (add: +=) for
// r < count, i < d. A warp's call, after a block barrier: the staging area overlays the
// operand tiles every warp reads.
template <int Dp, class Ex>
XCOMP_FLASH_FN void write_warp_rows(const Ex& ex, typename Ex::Accumulator (&acc)[Dp / 16], float* staging,
                                    float* rows, int64_t row_stride, int64_t count, int64_t d, bool add) {
  constexpr int stride = tile_stride<Dp>();
XCOMP_FLASH_UNROLL
  for (int n = 0; n < Dp / 16; ++n) ex.store(staging + n * 16, acc[n], stride);
  ex.sync_warp();
  for (int64_t e = ex.lane(); e < 16 * d; e += 32) {
    const int64_t r = e / d, i = e % d;
    if (r >= count) break;
    float& target = rows[r * row_stride + i];
    target = add ? target + staging[r * stride + i] : staging[r * stride + i];
  }
}

// The running softmax statistics of query r of a warp's 16 over the tiles of scores: max
// m, normaliser l = sum exp(x - m) and, with dp, w = sum exp(x - m) dp. Lanes r and r + 16
// hold query r's, each adding half of a tile's keys and exchanging the partial results
// (every lane of the warp calls add_tile). Keys the query does not see are skipped.
struct RowStatistics {
  float m = -INFINITY, l = 0.f, w = 0.f;

  template <class Ex>
  XCOMP_FLASH_FN void add_tile(const Ex& ex, const Dims& s, const int32_t* valid, int64_t t, int64_t k0,
                               const float* scores, const float* dp) {
    constexpr int kHalf = kStreamRows / 2;
    const int j0 = (ex.lane() >> 4) * kHalf;
    float tile_max = -INFINITY;
    for (int j = j0; j < j0 + kHalf; ++j)
      if (visible(s, valid, t, k0 + j)) tile_max = fmaxf(tile_max, scores[j] * s.scale);
    tile_max = fmaxf(tile_max, ex.shuffle_xor(tile_max, 16));
    const float m_new = fmaxf(m, tile_max);
    float sum = 0.f, weighted = 0.f;
    if (m_new != -INFINITY) {
      for (int j = j0; j < j0 + kHalf; ++j) {
        if (!visible(s, valid, t, k0 + j)) continue;
        const float p = expf(scores[j] * s.scale - m_new);
        sum += p;
        if (dp != nullptr) weighted += p * dp[j];
      }
    }
    sum += ex.shuffle_xor(sum, 16);
    if (dp != nullptr) weighted += ex.shuffle_xor(weighted, 16);
    if (m_new == -INFINITY) return;  // nothing visible so far
    const float correction = expf(m - m_new);  // 0 while m was -inf
    l = l * correction + sum;
    w = w * correction + weighted;
    m = m_new;
  }
  // +inf for a query that sees no key: exp(x - lse) is then 0 for every key.
  XCOMP_FLASH_FN float log_sum_exp() const { return m == -INFINITY ? INFINITY : m + logf(l); }
  XCOMP_FLASH_FN float weighted_mean() const { return m == -INFINITY ? 0.f : w / l; }
};

// Block (query tile, head h, row b): out for the tile's queries.
template <int Dp, class Ex>
XCOMP_FLASH_FN void forward_body(const Ex& ex, const Dims& s, const float* q, const float* k, const float* v,
                                 const int32_t* key_valid, float* out, unsigned char* shared) {
  using Operand = typename Ex::Operand;
  using Layout = ForwardLayout<Dp, Operand>;
  constexpr int stride = tile_stride<Dp>();
  Operand* q_tile = region<Operand>(shared, Layout::kQuery);
  Operand* k_tile = region<Operand>(shared, Layout::kKey);
  Operand* v_tile = region<Operand>(shared, Layout::kValue);
  float* scores = region<float>(shared, Layout::kScores);
  Operand* probs = region<Operand>(shared, Layout::kProbs);
  float* lse_tile = region<float>(shared, Layout::kLogSumExps);
  const int64_t t0 = ex.block_x() * int64_t{kOwnRows}, h = ex.block_y(), b = ex.block_z(), kh = h / s.group;
  const int lane = ex.lane(), warp = ex.warp();
  const int64_t queries = s.t - t0 < kOwnRows ? s.t - t0 : kOwnRows;
  const int64_t key_end = s.length - s.t + t0 + queries;  // no query of the tile sees a key past it
  const int32_t* valid = key_valid + b * s.capacity;
  const int64_t q_stride = s.heads * s.d, kv_stride = s.kv_heads * s.d;
  const int64_t kv_offset = (b * s.capacity * s.kv_heads + kh) * s.d;
  const KeyStream<Operand> stream{k + kv_offset, v + kv_offset, kv_stride, key_end, s.d, k_tile, v_tile};
  load_rows<Dp>(ex, q + ((b * s.t + t0) * s.heads + h) * s.d, q_stride, queries, s.d, kOwnRows, q_tile);
  const int first = warp * 16;  // the warp's rows of the tile
  float* warp_scores = scores + first * kScoreStride;
  Operand* warp_probs = probs + first * kScoreStride;

  RowStatistics stats;  // lanes r and r + 16: query t0 + first + r
  const int64_t lane_t = t0 + first + (lane & 15);
  for (int64_t k0 = 0; k0 < key_end; k0 += kStreamRows) {
    stream.template load<Dp>(ex, k0, false);  // (the first barrier also orders the query tile's writes)
    product_with_transposed<Dp>(ex, q_tile + first * stride, k_tile, warp_scores);
    ex.sync_warp();
    stats.add_tile(ex, s, valid, lane_t, k0, warp_scores + (lane & 15) * kScoreStride, nullptr);
  }
  if (lane < 16) lse_tile[first + lane] = stats.log_sum_exp();
  ex.sync_warp();  // the warp converges before its next fragment calls

  typename Ex::Accumulator acc[Dp / 16];
XCOMP_FLASH_UNROLL
  for (int n = 0; n < Dp / 16; ++n) ex.fill(acc[n], 0.f);
  for (int64_t k0 = 0; k0 < key_end; k0 += kStreamRows) {
    stream.template load<Dp>(ex, k0, true);  // (the first barrier also orders lse_tile's writes)
    product_with_transposed<Dp>(ex, q_tile + first * stride, k_tile, warp_scores);
    ex.sync_warp();
    for (int e = lane; e < 16 * kStreamRows; e += 32) {
      const int r = e / kStreamRows, j = e % kStreamRows;
      const float x = warp_scores[r * kScoreStride + j];
      warp_probs[r * kScoreStride + j] = ex.to_operand(
          visible(s, valid, t0 + first + r, k0 + j) ? expf(x * s.scale - lse_tile[first + r]) : 0.f);
    }
    ex.sync_warp();
    accumulate_product<Dp>(ex, acc, warp_probs, v_tile);
  }
  ex.sync();  // every warp is done with the tiles the staging area overlays
  write_warp_rows<Dp>(ex, acc, region<float>(shared, 0) + first * stride,
                      out + ((b * s.t + t0 + first) * s.heads + h) * s.d, q_stride, queries - first, s.d, false);
}

// Block (query tile, head h, row b): dq for the tile's queries (overwritten), and each
// query's log-sum-exp and D at (b * T + t) * heads + h for backward_key_value.
template <int Dp, class Ex>
XCOMP_FLASH_FN void backward_query_body(const Ex& ex, const Dims& s, const float* dout, const float* q,
                                        const float* k, const float* v, const int32_t* key_valid, float* dq,
                                        float* log_sum_exps, float* weighted_means, unsigned char* shared) {
  using Operand = typename Ex::Operand;
  using Layout = BackwardQueryLayout<Dp, Operand>;
  constexpr int stride = tile_stride<Dp>();
  Operand* q_tile = region<Operand>(shared, Layout::kQuery);
  Operand* dout_tile = region<Operand>(shared, Layout::kDout);
  Operand* k_tile = region<Operand>(shared, Layout::kKey);
  Operand* v_tile = region<Operand>(shared, Layout::kValue);
  float* scores = region<float>(shared, Layout::kScores);
  float* dprobs = region<float>(shared, Layout::kDprobs);
  Operand* dscores = region<Operand>(shared, Layout::kDscores);
  float* lse_tile = region<float>(shared, Layout::kLogSumExps);
  float* mean_tile = region<float>(shared, Layout::kMeans);
  const int64_t t0 = ex.block_x() * int64_t{kOwnRows}, h = ex.block_y(), b = ex.block_z(), kh = h / s.group;
  const int lane = ex.lane(), warp = ex.warp();
  const int64_t queries = s.t - t0 < kOwnRows ? s.t - t0 : kOwnRows;
  const int64_t key_end = s.length - s.t + t0 + queries;
  const int32_t* valid = key_valid + b * s.capacity;
  const int64_t q_stride = s.heads * s.d, kv_stride = s.kv_heads * s.d;
  const int64_t q_offset = ((b * s.t + t0) * s.heads + h) * s.d;
  const int64_t kv_offset = (b * s.capacity * s.kv_heads + kh) * s.d;
  const KeyStream<Operand> stream{k + kv_offset, v + kv_offset, kv_stride, key_end, s.d, k_tile, v_tile};
  load_rows<Dp>(ex, q + q_offset, q_stride, queries, s.d, kOwnRows, q_tile);
  load_rows<Dp>(ex, dout + q_offset, q_stride, queries, s.d, kOwnRows, dout_tile);
  const int first = warp * 16;
  float* warp_scores = scores + first * kScoreStride;
  float* warp_dprobs = dprobs + first * kScoreStride;
  Operand* warp_dscores = dscores + first * kScoreStride;

  RowStatistics stats;
  const int64_t lane_t = t0 + first + (lane & 15);
  for (int64_t k0 = 0; k0 < key_end; k0 += kStreamRows) {
    stream.template load<Dp>(ex, k0, true);
    product_with_transposed<Dp>(ex, q_tile + first * stride, k_tile, warp_scores);
    product_with_transposed<Dp>(ex, dout_tile + first * stride, v_tile, warp_dprobs);  // dP
    ex.sync_warp();
    stats.add_tile(ex, s, valid, lane_t, k0, warp_scores + (lane & 15) * kScoreStride,
                   warp_dprobs + (lane & 15) * kScoreStride);
  }
  if (lane < 16) {
    lse_tile[first + lane] = stats.log_sum_exp();
    mean_tile[first + lane] = stats.weighted_mean();
    if (lane_t < s.t) {
      const int64_t row = (b * s.t + lane_t) * s.heads + h;
      log_sum_exps[row] = lse_tile[first + lane];
      weighted_means[row] = mean_tile[first + lane];
    }
  }
  ex.sync_warp();  // the warp converges before its next fragment calls

  typename Ex::Accumulator acc[Dp / 16];
XCOMP_FLASH_UNROLL
  for (int n = 0; n < Dp / 16; ++n) ex.fill(acc[n], 0.f);
  for (int64_t k0 = 0; k0 < key_end; k0 += kStreamRows) {
    stream.template load<Dp>(ex, k0, true);
    product_with_transposed<Dp>(ex, q_tile + first * stride, k_tile, warp_scores);
    product_with_transposed<Dp>(ex, dout_tile + first * stride, v_tile, warp_dprobs);  // dP
    ex.sync_warp();
    for (int e = lane; e < 16 * kStreamRows; e += 32) {
      const int r = e / kStreamRows, j = e % kStreamRows;
      const float x = warp_scores[r * kScoreStride + j];
      const float p =
          visible(s, valid, t0 + first + r, k0 + j) ? expf(x * s.scale - lse_tile[first + r]) : 0.f;
      warp_dscores[r * kScoreStride + j] =
          ex.to_operand(p * (warp_dprobs[r * kScoreStride + j] - mean_tile[first + r]) * s.scale);  // dS
    }
    ex.sync_warp();
    accumulate_product<Dp>(ex, acc, warp_dscores, k_tile);
  }
  ex.sync();  // every warp is done with the tiles the staging area overlays
  write_warp_rows<Dp>(ex, acc, region<float>(shared, 0) + first * stride, dq + q_offset + first * q_stride, q_stride,
                      queries - first, s.d, false);
}

// Block (key tile, kv head kh, row b), kKeyValueThreads: dk and dv of the tile's entries
// (added), over every head of the group and every query tile that sees one of them. Two
// warps share each 16 keys: the value side computes scores^T and adds dv += P^T dout, the
// key side dP^T and dk += dS^T q (so each keeps one set of head_dim accumulators: both
// sets in one warp spill at head_dim 128); the pair computes P and dS between them.
constexpr int kKeyValueThreads = 2 * kThreads;

template <int Dp, class Ex>
XCOMP_FLASH_FN void backward_key_value_body(const Ex& ex, const Dims& s, const float* dout, const float* q,
                                            const float* k, const float* v, const int32_t* key_valid,
                                            const float* log_sum_exps, const float* weighted_means, float* dk,
                                            float* dv, unsigned char* shared) {
  using Operand = typename Ex::Operand;
  using Layout = BackwardKeyValueLayout<Dp, Operand>;
  constexpr int stride = tile_stride<Dp>();
  Operand* k_tile = region<Operand>(shared, Layout::kKey);
  Operand* v_tile = region<Operand>(shared, Layout::kValue);
  Operand* q_tile = region<Operand>(shared, Layout::kQuery);
  Operand* dout_tile = region<Operand>(shared, Layout::kDout);
  float* probs = region<float>(shared, Layout::kProbs);
  float* dscores = region<float>(shared, Layout::kDscores);
  Operand* prob_operands = region<Operand>(shared, Layout::kProbOperands);
  Operand* dscore_operands = region<Operand>(shared, Layout::kDscoreOperands);
  float* lse_tile = region<float>(shared, Layout::kLogSumExps);
  float* mean_tile = region<float>(shared, Layout::kMeans);
  const int64_t k0 = ex.block_x() * int64_t{kOwnRows}, kh = ex.block_y(), b = ex.block_z();
  const int lane = ex.lane(), warp = ex.warp();
  const bool value_side = warp < kWarps;
  const int64_t keys = s.length - k0 < kOwnRows ? s.length - k0 : kOwnRows;
  const int32_t* valid = key_valid + b * s.capacity;
  const int64_t q_stride = s.heads * s.d, kv_stride = s.kv_heads * s.d;
  const int64_t kv_offset = ((b * s.capacity + k0) * s.kv_heads + kh) * s.d;
  load_rows<Dp, kKeyValueThreads>(ex, k + kv_offset, kv_stride, keys, s.d, kOwnRows, k_tile);
  load_rows<Dp, kKeyValueThreads>(ex, v + kv_offset, kv_stride, keys, s.d, kOwnRows, v_tile);
  const int first = warp % kWarps * 16;  // the pair's keys of the tile
  float* pair_probs = probs + first * kScoreStride;
  float* pair_dscores = dscores + first * kScoreStride;
  Operand* pair_prob_operands = prob_operands + first * kScoreStride;
  Operand* pair_dscore_operands = dscore_operands + first * kScoreStride;

  typename Ex::Accumulator acc[Dp / 16];  // dv on the value side, dk on the key side
XCOMP_FLASH_UNROLL
  for (int n = 0; n < Dp / 16; ++n) ex.fill(acc[n], 0.f);
  // Query t sees entry k0 from t = k0 - prefix on; start at the query tile holding it.
  const int64_t prefix = s.length - s.t;
  const int64_t first_t = (k0 > prefix ? k0 - prefix : 0) / kStreamRows * kStreamRows;
  for (int64_t h = kh * s.group; h < (kh + 1) * s.group; ++h) {
    for (int64_t t0 = first_t; t0 < s.t; t0 += kStreamRows) {
      ex.sync();  // the previous query tile is consumed (the first time: k and v are written)
      const int64_t q_offset = ((b * s.t + t0) * s.heads + h) * s.d;
      load_rows<Dp, kKeyValueThreads>(ex, q + q_offset, q_stride, s.t - t0, s.d, kStreamRows, q_tile);
      load_rows<Dp, kKeyValueThreads>(ex, dout + q_offset, q_stride, s.t - t0, s.d, kStreamRows, dout_tile);
      for (int i = ex.thread(); i < kStreamRows; i += kKeyValueThreads) {
        const int64_t t = t0 + i, row = (b * s.t + t) * s.heads + h;
        lse_tile[i] = t < s.t ? log_sum_exps[row] : INFINITY;
        mean_tile[i] = t < s.t ? weighted_means[row] : 0.f;
      }
      ex.sync();
      if (value_side) {
        product_with_transposed<Dp>(ex, k_tile + first * stride, q_tile, pair_probs);  // scores^T
      } else {
        product_with_transposed<Dp>(ex, v_tile + first * stride, dout_tile, pair_dscores);  // dP^T
      }
      ex.sync();  // both of the pair's products are written
      // The pair's 64 lanes take alternate entries.
      for (int e = lane + (value_side ? 0 : 32); e < 16 * kStreamRows; e += 64) {
        const int r = e / kStreamRows, j = e % kStreamRows;  // key k0 + first + r, query t0 + j
        const int at = r * kScoreStride + j;
        const float p =
            visible(s, valid, t0 + j, k0 + first + r) ? expf(pair_probs[at] * s.scale - lse_tile[j]) : 0.f;
        pair_prob_operands[at] = ex.to_operand(p);
        pair_dscore_operands[at] = ex.to_operand(p * (pair_dscores[at] - mean_tile[j]) * s.scale);
      }
      ex.sync();
      if (value_side) {
        accumulate_product<Dp>(ex, acc, pair_prob_operands, dout_tile);
      } else {
        accumulate_product<Dp>(ex, acc, pair_dscore_operands, q_tile);
      }
    }
  }
  // Staging rows: the value side's warps 0-3 hold dv of the tile's 64 keys, the key
  // side's 4-7 dk.
  ex.sync();  // every warp is done with the tiles the staging area overlays
  float* rows = (value_side ? dv : dk) + kv_offset + first * kv_stride;
  write_warp_rows<Dp>(ex, acc, region<float>(shared, 0) + warp * 16 * stride, rows, kv_stride, keys - first, s.d,
                      true);
}

}  // namespace xcomp::flash
