// Grouped-query causal attention of the CUDA backend (the visibility rule is
// Ops::attention's). By default it runs as batched cuBLAS products over materialised
// scores, a block of 128 queries at a time with the keys those see (gemm_causal,
// cuda_attention_gemm.cu), where their workspace fits and head_dim keeps cuBLAS's
// per-head pointers aligned (a multiple of 4, or 8 with bf16 operands: every LLaMA
// shape). The CUDA-core kernels here are the fallback and its cross-check. Two forwards: the tiled one
// (attention_tiled_kernel, head_dim <= 128) and the simple one it is checked against,
// where one thread block per (row, query, head) keeps the query's scores over all its
// visible keys in shared memory, takes an exact fp32 softmax and the probability-weighted
// sum of values (XCOMP_CUDA_ATTENTION=simple selects it everywhere, =tiled the tiled one
// where it applies). Two backwards as well, both recomputing the softmax: the tiled one
// (attention_backward_query_tiled_kernel and attention_backward_key_tiled_kernel,
// head_dim a multiple of 4 up to 128) and the reference it is checked against
// (attention_backward_query_kernel and attention_backward_key_kernel, one block per query
// and per key entry; XCOMP_CUDA_ATTENTION_BACKWARD=reference or =tiled selects them).
#include <glog/logging.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

#include "model/cuda/block_reduce.cuh"
#include "model/cuda/cuda_backend.h"
#include "model/cuda/cuda_check.h"
#include "model/cuda/dynamic_shared_memory.cuh"
#include "model/input_error.h"

namespace xcomp::cuda {

namespace {

constexpr int kThreads = 128;
constexpr int kMaxHeadDim = 256;

struct AttentionDims {
  int64_t batch, t, heads, d, capacity, kv_heads, group, length;
  float scale;
};

// Where key/value entry `pos` of kv head `kh` in row `b` starts.
__device__ int64_t kv_offset(const AttentionDims& s, int64_t b, int64_t pos, int64_t kh) {
  return ((b * s.capacity + pos) * s.kv_heads + kh) * s.d;
}

// scores[pos] = (q * scale) . k[pos] for visible keys, -inf for padding; pos < n, where
// the causal rule already limits n. One warp per key, lanes over the head dimension.
__device__ void visible_scores(const AttentionDims& s, const float* q_scaled, const float* k, const int32_t* valid,
                               int64_t b, int64_t kh, int64_t n, float* scores) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  for (int64_t pos = warp; pos < n; pos += warps) {
    const float* key = k + kv_offset(s, b, pos, kh);
    float sum = 0.f;
    for (int64_t i = lane; i < s.d; i += 32) sum += q_scaled[i] * key[i];
    sum = warp_sum(sum);
    if (lane == 0) scores[pos] = valid[pos] ? sum : -INFINITY;
  }
}

// In place: scores -> softmax probabilities over [0, n). Returns false (uniformly over the
// block) when no key is visible; else *log_sum_exp = max + log(sum exp(score - max)).
__device__ bool softmax_in_place(float* scores, int64_t n, float* scratch, float* log_sum_exp) {
  __syncthreads();  // scores were written by other warps
  float local_max = -INFINITY;
  for (int64_t pos = threadIdx.x; pos < n; pos += blockDim.x) local_max = fmaxf(local_max, scores[pos]);
  const float max_score = block_max(local_max, scratch, -INFINITY);
  if (max_score == -INFINITY) return false;
  float local_sum = 0.f;
  for (int64_t pos = threadIdx.x; pos < n; pos += blockDim.x) {
    const float p = expf(scores[pos] - max_score);
    scores[pos] = p;
    local_sum += p;
  }
  const float total = block_sum(local_sum, scratch);
  *log_sum_exp = max_score + logf(total);
  const float inv = 1.0f / total;
  for (int64_t pos = threadIdx.x; pos < n; pos += blockDim.x) scores[pos] *= inv;  // the entries this thread wrote
  __syncthreads();
  return true;
}

// out[i] = sum_pos weights[pos] * rows[pos][i] over kv head kh's entries [0, n). Threads
// split the keys into groups (several per dimension when head_dim < blockDim) and the
// groups' partial sums are added at the end.
__device__ void weighted_sum_of_rows(const AttentionDims& s, const float* weights, const float* rows, int64_t b,
                                     int64_t kh, int64_t n, float* partial, float* out) {
  const int groups = blockDim.x >= s.d ? static_cast<int>(blockDim.x / s.d) : 1;
  for (int slot = threadIdx.x; slot < groups * s.d; slot += blockDim.x) {
    const int g = slot / s.d, i = slot % s.d;
    float acc = 0.f;
    for (int64_t pos = g; pos < n; pos += groups) acc += weights[pos] * rows[kv_offset(s, b, pos, kh) + i];
    partial[slot] = acc;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < s.d; i += blockDim.x) {
    float total = 0.f;
    for (int g = 0; g < groups; ++g) total += partial[g * s.d + i];
    out[i] = total;
  }
}

// Block (head, query t, row b). Dynamic shared memory: `length` floats of scores.
__global__ void attention_kernel(AttentionDims s, const float* q, const float* k, const float* v,
                                 const int32_t* key_valid, float* out) {
  extern __shared__ float scores[];
  __shared__ float q_scaled[kMaxHeadDim];
  __shared__ float partial[kMaxHeadDim > kThreads ? kMaxHeadDim : kThreads];
  __shared__ float scratch[32];
  const int64_t h = blockIdx.x, t = blockIdx.y, b = blockIdx.z, kh = h / s.group;
  const int64_t at = ((b * s.t + t) * s.heads + h) * s.d;
  const int64_t n = s.length - s.t + t + 1;  // keys [0, n) are causally visible
  for (int64_t i = threadIdx.x; i < s.d; i += blockDim.x) q_scaled[i] = q[at + i] * s.scale;
  __syncthreads();
  visible_scores(s, q_scaled, k, key_valid + b * s.capacity, b, kh, n, scores);
  float log_sum_exp;
  if (!softmax_in_place(scores, n, scratch, &log_sum_exp)) {
    for (int64_t i = threadIdx.x; i < s.d; i += blockDim.x) out[at + i] = 0.f;
    return;
  }
  weighted_sum_of_rows(s, scores, v, b, kh, n, partial, out + at);
}

// The tiled forward (flash-style, fp32 on CUDA cores): a block takes kTileQueries queries
// of one head and walks the keys in tiles of kTileKeys staged in shared memory, keeping a
// running max, normaliser and weighted sum per query (the online softmax), so each key
// and value is read from memory once per block instead of once per query. One warp per
// kQueriesPerWarp queries: lane j scores key j of the tile, and each lane accumulates
// head dimensions lane, lane + 32, ...
constexpr int kTileQueries = 32;
constexpr int kTileKeys = 32;  // one key per lane when scoring
constexpr int kTiledWarps = 8;
constexpr int kQueriesPerWarp = kTileQueries / kTiledWarps;
constexpr int kTiledMaxHeadDim = 128;
constexpr int kTiledDimsPerLane = kTiledMaxHeadDim / 32;

size_t tiled_shared_bytes(int64_t d) {
  // q [kTileQueries][d] (scaled), k [kTileKeys][d + 1] (padded: lanes read different
  // rows at the same column without bank conflicts), v [kTileKeys][d].
  return static_cast<size_t>(kTileQueries * d + kTileKeys * (d + 1) + kTileKeys * d) * sizeof(float);
}

// Block (query tile, head, row b).
__global__ void attention_tiled_kernel(AttentionDims s, const float* q, const float* k, const float* v,
                                       const int32_t* key_valid, float* out) {
  extern __shared__ float tiled_shared[];
  const int64_t d = s.d;
  float* q_tile = tiled_shared;
  float* k_tile = q_tile + kTileQueries * d;
  float* v_tile = k_tile + kTileKeys * (d + 1);
  const int64_t t0 = blockIdx.x * int64_t{kTileQueries}, h = blockIdx.y, b = blockIdx.z, kh = h / s.group;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t queries = s.t - t0 < kTileQueries ? s.t - t0 : kTileQueries;
  for (int64_t e = threadIdx.x; e < kTileQueries * d; e += blockDim.x) {
    const int64_t local = e / d, i = e % d;
    q_tile[e] = local < queries ? q[((b * s.t + t0 + local) * s.heads + h) * d + i] * s.scale : 0.f;
  }
  float m[kQueriesPerWarp], l[kQueriesPerWarp], acc[kQueriesPerWarp][kTiledDimsPerLane];
#pragma unroll
  for (int qi = 0; qi < kQueriesPerWarp; ++qi) {
    m[qi] = -INFINITY;
    l[qi] = 0.f;
#pragma unroll
    for (int j = 0; j < kTiledDimsPerLane; ++j) acc[qi][j] = 0.f;
  }
  const int64_t prefix = s.length - s.t;        // query t sees keys pos <= prefix + t
  const int64_t key_end = prefix + t0 + queries;  // no query of this block sees a key past it
  const int32_t* valid = key_valid + b * s.capacity;
  for (int64_t k0 = 0; k0 < key_end; k0 += kTileKeys) {
    __syncthreads();  // the previous tile is consumed (and, the first time, q_tile written)
    for (int64_t e = threadIdx.x; e < kTileKeys * d; e += blockDim.x) {
      const int64_t j = e / d, i = e % d, pos = k0 + j;
      float key_value = 0.f, value = 0.f;
      if (pos < key_end) {
        const int64_t at = kv_offset(s, b, pos, kh) + i;
        key_value = k[at];
        value = v[at];
      }
      k_tile[j * (d + 1) + i] = key_value;
      v_tile[j * d + i] = value;
    }
    __syncthreads();
    const int64_t pos = k0 + lane;
    const bool key_usable = pos < key_end && valid[pos] != 0;
#pragma unroll
    for (int qi = 0; qi < kQueriesPerWarp; ++qi) {
      const int64_t local = warp * kQueriesPerWarp + qi;
      if (local < queries) {  // the same for the whole warp
        float score = -INFINITY;
        if (key_usable && pos <= prefix + t0 + local) {
          const float* q_row = q_tile + local * d;
          const float* k_row = k_tile + lane * (d + 1);
          float sum = 0.f;
          for (int64_t i = 0; i < d; ++i) sum += q_row[i] * k_row[i];
          score = sum;
        }
        const float m_new = fmaxf(m[qi], warp_max(score));
        if (m_new != -INFINITY) {  // else nothing visible so far: nothing to add
          const float p = expf(score - m_new);           // 0 for keys this query cannot see
          const float correction = expf(m[qi] - m_new);  // 0 while m was -inf
          l[qi] = l[qi] * correction + warp_sum(p);
          m[qi] = m_new;
#pragma unroll
          for (int j = 0; j < kTiledDimsPerLane; ++j) acc[qi][j] *= correction;
          for (int key = 0; key < kTileKeys; ++key) {
            const float p_key = __shfl_sync(kFullWarp, p, key);
#pragma unroll
            for (int j = 0; j < kTiledDimsPerLane; ++j) {
              const int64_t i = lane + 32 * j;
              if (i < d) acc[qi][j] += p_key * v_tile[key * d + i];
            }
          }
        }
      }
    }
  }
#pragma unroll
  for (int qi = 0; qi < kQueriesPerWarp; ++qi) {
    const int64_t local = warp * kQueriesPerWarp + qi;
    if (local >= queries) continue;
    float* o = out + ((b * s.t + t0 + local) * s.heads + h) * d;
    const bool seen = m[qi] != -INFINITY;  // a query that sees no key gets zeros
#pragma unroll
    for (int j = 0; j < kTiledDimsPerLane; ++j) {
      const int64_t i = lane + 32 * j;
      if (i < d) o[i] = seen ? acc[qi][j] / l[qi] : 0.f;
    }
  }
}

// The reference backward in two kernels, so that no two blocks write the same gradient entry
// (no atomics, a fixed summation order):
//  1. per query (block (head, t, row)): the softmax P, dP = dout . v, D = sum_j P_j dP_j,
//     dS = P (dP - D) * scale and dq = dS . K; it also keeps log-sum-exp and D per query;
//  2. per key entry (block (pos, kv head, row)): over every query and head that sees it,
//     P = exp(score - log-sum-exp) again, dk += dS q and dv += P dout.
// Dynamic shared memory of kernel 1: 2 * length floats (P and dS).
__global__ void attention_backward_query_kernel(AttentionDims s, const float* dout, const float* q, const float* k,
                                                const float* v, const int32_t* key_valid, float* dq,
                                                float* log_sum_exps, float* weighted_sums) {
  extern __shared__ float shared[];
  float* probs = shared;
  float* dscores = shared + s.length;
  __shared__ float q_scaled[kMaxHeadDim], grad[kMaxHeadDim];
  __shared__ float partial[kMaxHeadDim > kThreads ? kMaxHeadDim : kThreads];
  __shared__ float scratch[32];
  const int64_t h = blockIdx.x, t = blockIdx.y, b = blockIdx.z, kh = h / s.group;
  const int64_t row = (b * s.t + t) * s.heads + h, at = row * s.d;
  const int64_t n = s.length - s.t + t + 1;
  for (int64_t i = threadIdx.x; i < s.d; i += blockDim.x) {
    q_scaled[i] = q[at + i] * s.scale;
    grad[i] = dout[at + i];
  }
  __syncthreads();
  visible_scores(s, q_scaled, k, key_valid + b * s.capacity, b, kh, n, probs);
  float log_sum_exp;
  if (!softmax_in_place(probs, n, scratch, &log_sum_exp)) {  // the output was 0, whatever q
    for (int64_t i = threadIdx.x; i < s.d; i += blockDim.x) dq[at + i] = 0.f;
    if (threadIdx.x == 0) log_sum_exps[row] = weighted_sums[row] = 0.f;  // no key reads them
    return;
  }
  // dP[pos] = dout . v[pos] (one warp per key), then dS = P (dP - sum_j P_j dP_j) * scale.
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  float local_weighted = 0.f;
  for (int64_t pos = warp; pos < n; pos += warps) {
    const float* value = v + kv_offset(s, b, pos, kh);
    float sum = 0.f;
    for (int64_t i = lane; i < s.d; i += 32) sum += grad[i] * value[i];
    sum = warp_sum(sum);
    if (lane == 0) {
      dscores[pos] = sum;
      local_weighted += probs[pos] * sum;
    }
  }
  const float weighted = block_sum(local_weighted, scratch);  // also orders the dscores writes
  for (int64_t pos = threadIdx.x; pos < n; pos += blockDim.x)
    dscores[pos] = probs[pos] * (dscores[pos] - weighted) * s.scale;
  if (threadIdx.x == 0) {
    log_sum_exps[row] = log_sum_exp;
    weighted_sums[row] = weighted;
  }
  __syncthreads();
  weighted_sum_of_rows(s, dscores, k, b, kh, n, partial, dq + at);
}

constexpr int kKeyWarps = kThreads / 32;
constexpr int kDimsPerLane = kMaxHeadDim / 32;

// Block (key entry pos, kv head, row b), one warp per (query, head) pair that sees the
// key; each lane keeps dims lane, lane + 32, ... of the sums, and the warps' sums are
// added at the end. Padded keys get nothing (no query sees them).
__global__ void attention_backward_key_kernel(AttentionDims s, const float* dout, const float* q, const float* k,
                                              const float* v, const int32_t* key_valid, const float* log_sum_exps,
                                              const float* weighted_sums, float* dk, float* dv) {
  __shared__ float key[kMaxHeadDim], value[kMaxHeadDim];
  __shared__ float dk_partial[kKeyWarps][kMaxHeadDim], dv_partial[kKeyWarps][kMaxHeadDim];
  const int64_t pos = blockIdx.x, kh = blockIdx.y, b = blockIdx.z;
  if (!key_valid[b * s.capacity + pos]) return;
  const int64_t offset = kv_offset(s, b, pos, kh);
  for (int64_t i = threadIdx.x; i < s.d; i += blockDim.x) {
    key[i] = k[offset + i];
    value[i] = v[offset + i];
  }
  __syncthreads();
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float dk_sum[kDimsPerLane], dv_sum[kDimsPerLane];
#pragma unroll
  for (int j = 0; j < kDimsPerLane; ++j) dk_sum[j] = dv_sum[j] = 0.f;
  // Query t sees entry pos iff pos <= length - T + t.
  const int64_t first_t = pos > s.length - s.t ? pos - (s.length - s.t) : 0;
  const int64_t pairs = (s.t - first_t) * s.group;
  for (int64_t pair = warp; pair < pairs; pair += kKeyWarps) {
    const int64_t t = first_t + pair / s.group, h = kh * s.group + pair % s.group;
    const int64_t row = (b * s.t + t) * s.heads + h, at = row * s.d;
    float score = 0.f, dp = 0.f;
#pragma unroll
    for (int j = 0; j < kDimsPerLane; ++j) {
      const int64_t i = lane + 32 * j;
      if (i < s.d) {
        score += q[at + i] * s.scale * key[i];
        dp += dout[at + i] * value[i];
      }
    }
    score = warp_sum(score);
    dp = warp_sum(dp);
    const float p = expf(score - log_sum_exps[row]);
    const float ds = p * (dp - weighted_sums[row]) * s.scale;
#pragma unroll
    for (int j = 0; j < kDimsPerLane; ++j) {
      const int64_t i = lane + 32 * j;
      if (i < s.d) {
        dk_sum[j] += ds * q[at + i];
        dv_sum[j] += p * dout[at + i];
      }
    }
  }
#pragma unroll
  for (int j = 0; j < kDimsPerLane; ++j) {
    const int i = lane + 32 * j;
    if (i < s.d) {
      dk_partial[warp][i] = dk_sum[j];
      dv_partial[warp][i] = dv_sum[j];
    }
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < s.d; i += blockDim.x) {
    float dk_total = 0.f, dv_total = 0.f;
    for (int w = 0; w < kKeyWarps; ++w) {
      dk_total += dk_partial[w][i];
      dv_total += dv_partial[w][i];
    }
    dk[offset + i] += dk_total;
    dv[offset + i] += dv_total;
  }
}

// The tiled backward (FlashAttention-2 style, fp32 on CUDA cores), in two kernels so that
// no two blocks write the same gradient entry (no atomics, a fixed summation order):
//  1. a block per (query tile, head, row) walks the visible key tiles twice: first for
//     the log-sum-exp and D = sum_j P_j dP_j of each query (online, rescaled like the
//     forward's softmax), then for dS = P (dP - D) * scale and dq = dS . K;
//  2. a block per (key tile, kv head, row) walks, for every head of the group, the query
//     tiles that can see its keys, recomputes P = exp(score - log-sum-exp) and dS from the
//     saved per-query values and adds dv += P^T dout and dk += dS^T q.
// Tiles sit in shared memory, so each row of q, dout, k and v is read from memory once per
// block instead of once per (query, key) pair. In the score phase a thread takes one key
// (its lane) and kBwdQueriesPerWarp queries (its warp's); in the accumulation phase it
// takes one key (kernel 2) or one query (kernel 1) and float4 chunks of head dimensions
// 4 * warp + 32 * c. Both kernels compute scores with the same code (tile_scores) on the
// same inputs, so kernel 2's P is consistent with kernel 1's log-sum-exp.
constexpr int kBwdTile = 32;  // queries and keys per tile: one key per lane
constexpr int kBwdWarps = 8;
constexpr int kBwdThreads = kBwdWarps * 32;
constexpr int kBwdQueriesPerWarp = kBwdTile / kBwdWarps;
constexpr int kBwdMaxHeadDim = 128;
constexpr int kBwdChunkDims = 4 * kBwdWarps;                 // dims one pass of the warps covers
constexpr int kBwdChunks = kBwdMaxHeadDim / kBwdChunkDims;  // float4 chunks per thread
static_assert(kBwdTile == 32 && kBwdTile % kBwdWarps == 0, "one key per lane, whole queries per warp");

// Row stride of a [kBwdTile][d] tile: d + 4 keeps rows 16-byte aligned for float4 reads,
// and for d a multiple of 8 the 8 lanes of each float4 phase reading 8 different rows
// (the score phase) hit 8 different groups of 4 banks.
__host__ __device__ int bwd_stride(int64_t d) { return static_cast<int>(d) + 4; }

bool tiled_backward_applies(int64_t d) { return d <= kBwdMaxHeadDim && d % 4 == 0; }

// Kernel 1: q, dout, k, v tiles and dS [kBwdTile][kBwdTile + 1] (padded: the score phase
// writes a row per warp, the dq phase reads a column per warp).
size_t backward_query_shared_bytes(int64_t d) {
  return static_cast<size_t>(4 * kBwdTile * bwd_stride(d) + kBwdTile * (kBwdTile + 1)) * sizeof(float);
}

// Kernel 2: k, v, q, dout tiles, P and dS [kBwdTile queries][kBwdTile keys], and the
// query tile's log-sum-exps and D.
size_t backward_key_shared_bytes(int64_t d) {
  return static_cast<size_t>(4 * kBwdTile * bwd_stride(d) + 2 * kBwdTile * kBwdTile + 2 * kBwdTile) * sizeof(float);
}

// Rows [first, first + kBwdTile) of (head h, row b)'s queries and output gradients into
// tiles (zeros past T).
__device__ void load_query_tile(const AttentionDims& s, const float* q, const float* dout, int64_t b, int64_t h,
                                int64_t first, float* q_tile, float* dout_tile) {
  const int d = static_cast<int>(s.d), stride = bwd_stride(d);
  for (int e = threadIdx.x; e < kBwdTile * d; e += blockDim.x) {
    const int r = e / d, i = e % d;
    const int64_t t = first + r;
    float query = 0.f, grad = 0.f;
    if (t < s.t) {
      const int64_t at = ((b * s.t + t) * s.heads + h) * s.d + i;
      query = q[at];
      grad = dout[at];
    }
    q_tile[r * stride + i] = query;
    dout_tile[r * stride + i] = grad;
  }
}

// Entries [first, first + kBwdTile) of kv head kh's keys and values into tiles (zeros
// from `end` on).
__device__ void load_key_tile(const AttentionDims& s, const float* k, const float* v, int64_t b, int64_t kh,
                              int64_t first, int64_t end, float* k_tile, float* v_tile) {
  const int d = static_cast<int>(s.d), stride = bwd_stride(d);
  for (int e = threadIdx.x; e < kBwdTile * d; e += blockDim.x) {
    const int j = e / d, i = e % d;
    const int64_t pos = first + j;
    float key = 0.f, value = 0.f;
    if (pos < end) {
      const int64_t at = kv_offset(s, b, pos, kh) + i;
      key = k[at];
      value = v[at];
    }
    k_tile[j * stride + i] = key;
    v_tile[j * stride + i] = value;
  }
}

// For the warp's tile queries r = warp * kBwdQueriesPerWarp + qi and the lane's tile key:
// score[qi] = (q_r . k_lane) * scale and dp[qi] = dout_r . v_lane (the q and dout reads
// are broadcasts, the k and v rows of the lanes fall in different banks).
__device__ void tile_scores(const float* q_tile, const float* dout_tile, const float* k_tile, const float* v_tile,
                            int d, float scale, float* score, float* dp) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, stride = bwd_stride(d);
  const float* k_row = k_tile + lane * stride;
  const float* v_row = v_tile + lane * stride;
  float dot[kBwdQueriesPerWarp], grad_dot[kBwdQueriesPerWarp];
#pragma unroll
  for (int qi = 0; qi < kBwdQueriesPerWarp; ++qi) dot[qi] = grad_dot[qi] = 0.f;
#pragma unroll 2  // more keeps too many float4s live (kernel 1 took 145 registers)
  for (int i = 0; i < d; i += 4) {
    const float4 kk = *reinterpret_cast<const float4*>(k_row + i);
    const float4 vv = *reinterpret_cast<const float4*>(v_row + i);
#pragma unroll
    for (int qi = 0; qi < kBwdQueriesPerWarp; ++qi) {
      const int r = warp * kBwdQueriesPerWarp + qi;
      const float4 qq = *reinterpret_cast<const float4*>(q_tile + r * stride + i);
      const float4 gg = *reinterpret_cast<const float4*>(dout_tile + r * stride + i);
      dot[qi] += qq.x * kk.x + qq.y * kk.y + qq.z * kk.z + qq.w * kk.w;
      grad_dot[qi] += gg.x * vv.x + gg.y * vv.y + gg.z * vv.z + gg.w * vv.w;
    }
  }
#pragma unroll
  for (int qi = 0; qi < kBwdQueriesPerWarp; ++qi) {
    score[qi] = dot[qi] * scale;
    dp[qi] = grad_dot[qi];
  }
}

// acc[c][0..3] += weight * row[4 * warp + kBwdChunkDims * c + 0..3] for the chunks inside d
// (a broadcast read: every lane of the warp reads the same row).
__device__ __forceinline__ void add_scaled_chunks(float (&acc)[kBwdChunks][4], float weight, const float* row, int d) {
  const int warp = threadIdx.x / 32;
#pragma unroll
  for (int c = 0; c < kBwdChunks; ++c) {
    const int i = 4 * warp + kBwdChunkDims * c;
    if (i < d) {
      const float4 x = *reinterpret_cast<const float4*>(row + i);
      acc[c][0] += weight * x.x;
      acc[c][1] += weight * x.y;
      acc[c][2] += weight * x.z;
      acc[c][3] += weight * x.w;
    }
  }
}

// Block (query tile, head, row b): dq, and each query's log-sum-exp and D for kernel 2.
__global__ void __launch_bounds__(kBwdThreads)
    attention_backward_query_tiled_kernel(AttentionDims s, const float* dout, const float* q, const float* k,
                                          const float* v, const int32_t* key_valid, float* dq, float* log_sum_exps,
                                          float* weighted_sums) {
  extern __shared__ float4 bwd_query_shared[];  // float4: the tiles are read as float4
  const int d = static_cast<int>(s.d), stride = bwd_stride(d);
  float* q_tile = reinterpret_cast<float*>(bwd_query_shared);
  float* dout_tile = q_tile + kBwdTile * stride;
  float* k_tile = dout_tile + kBwdTile * stride;
  float* v_tile = k_tile + kBwdTile * stride;
  float* dscores = v_tile + kBwdTile * stride;  // [query][key], rows of kBwdTile + 1
  const int64_t t0 = blockIdx.x * int64_t{kBwdTile}, h = blockIdx.y, b = blockIdx.z, kh = h / s.group;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t queries = s.t - t0 < kBwdTile ? s.t - t0 : kBwdTile;
  const int64_t prefix = s.length - s.t;          // query t sees keys pos <= prefix + t
  const int64_t key_end = prefix + t0 + queries;  // no query of this block sees a key past it
  const int32_t* valid = key_valid + b * s.capacity;
  load_query_tile(s, q, dout, b, h, t0, q_tile, dout_tile);

  // Pass 1: running max m, normaliser l and w = sum_j exp(score_j - m) dP_j per query.
  float m[kBwdQueriesPerWarp], l[kBwdQueriesPerWarp], w[kBwdQueriesPerWarp];
#pragma unroll
  for (int qi = 0; qi < kBwdQueriesPerWarp; ++qi) {
    m[qi] = -INFINITY;
    l[qi] = w[qi] = 0.f;
  }
  for (int64_t k0 = 0; k0 < key_end; k0 += kBwdTile) {
    __syncthreads();  // the previous tile is consumed (and, the first time, the query tile written)
    load_key_tile(s, k, v, b, kh, k0, key_end, k_tile, v_tile);
    __syncthreads();
    const int64_t pos = k0 + lane;
    const bool key_usable = pos < key_end && valid[pos] != 0;
    float score[kBwdQueriesPerWarp], dp[kBwdQueriesPerWarp];
    tile_scores(q_tile, dout_tile, k_tile, v_tile, d, s.scale, score, dp);
#pragma unroll
    for (int qi = 0; qi < kBwdQueriesPerWarp; ++qi) {
      const int r = warp * kBwdQueriesPerWarp + qi;
      const float x = key_usable && r < queries && pos <= prefix + t0 + r ? score[qi] : -INFINITY;
      const float m_new = fmaxf(m[qi], warp_max(x));
      if (m_new != -INFINITY) {  // the same for the whole warp; else nothing visible so far
        const float p = expf(x - m_new);                // 0 for keys this query cannot see
        const float correction = expf(m[qi] - m_new);  // 0 while m was -inf
        l[qi] = l[qi] * correction + warp_sum(p);
        w[qi] = w[qi] * correction + warp_sum(p * dp[qi]);
        m[qi] = m_new;
      }
    }
  }
  // A query that sees no key keeps log-sum-exp 0 and D 0: its P is 0 for every key anyway.
  float lse[kBwdQueriesPerWarp], weighted[kBwdQueriesPerWarp];
#pragma unroll
  for (int qi = 0; qi < kBwdQueriesPerWarp; ++qi) {
    const bool seen = m[qi] != -INFINITY;
    lse[qi] = seen ? m[qi] + logf(l[qi]) : 0.f;
    weighted[qi] = seen ? w[qi] / l[qi] : 0.f;
    const int r = warp * kBwdQueriesPerWarp + qi;
    if (lane == 0 && r < queries) {
      const int64_t row = (b * s.t + t0 + r) * s.heads + h;
      log_sum_exps[row] = lse[qi];
      weighted_sums[row] = weighted[qi];
    }
  }

  // Pass 2: dS per (query, key) of the tile, then dq[query lane] += dS . K.
  float acc[kBwdChunks][4];
#pragma unroll
  for (int c = 0; c < kBwdChunks; ++c) acc[c][0] = acc[c][1] = acc[c][2] = acc[c][3] = 0.f;
  for (int64_t k0 = 0; k0 < key_end; k0 += kBwdTile) {
    __syncthreads();  // the previous tile and its dS are consumed
    load_key_tile(s, k, v, b, kh, k0, key_end, k_tile, v_tile);
    __syncthreads();
    const int64_t pos = k0 + lane;
    const bool key_usable = pos < key_end && valid[pos] != 0;
    float score[kBwdQueriesPerWarp], dp[kBwdQueriesPerWarp];
    tile_scores(q_tile, dout_tile, k_tile, v_tile, d, s.scale, score, dp);
#pragma unroll
    for (int qi = 0; qi < kBwdQueriesPerWarp; ++qi) {
      const int r = warp * kBwdQueriesPerWarp + qi;
      const bool seen = key_usable && r < queries && pos <= prefix + t0 + r;
      const float p = seen ? expf(score[qi] - lse[qi]) : 0.f;
      dscores[r * (kBwdTile + 1) + lane] = p * (dp[qi] - weighted[qi]) * s.scale;
    }
    __syncthreads();
    for (int j = 0; j < kBwdTile; ++j) add_scaled_chunks(acc, dscores[lane * (kBwdTile + 1) + j], k_tile + j * stride, d);
  }
  if (lane < queries) {
    float* grad = dq + ((b * s.t + t0 + lane) * s.heads + h) * s.d;
#pragma unroll
    for (int c = 0; c < kBwdChunks; ++c) {
      const int i = 4 * warp + kBwdChunkDims * c;
      if (i < d) {
        grad[i] = acc[c][0];
        grad[i + 1] = acc[c][1];
        grad[i + 2] = acc[c][2];
        grad[i + 3] = acc[c][3];
      }
    }
  }
}

// Block (key tile, kv head kh, row b): dk and dv of the tile's entries, over every head of
// the group and every query tile that sees one of them. Padded keys get P = 0, so += 0.
__global__ void __launch_bounds__(kBwdThreads)
    attention_backward_key_tiled_kernel(AttentionDims s, const float* dout, const float* q, const float* k,
                                        const float* v, const int32_t* key_valid, const float* log_sum_exps,
                                        const float* weighted_sums, float* dk, float* dv) {
  extern __shared__ float4 bwd_key_shared[];  // float4: the tiles are read as float4
  const int d = static_cast<int>(s.d), stride = bwd_stride(d);
  float* k_tile = reinterpret_cast<float*>(bwd_key_shared);
  float* v_tile = k_tile + kBwdTile * stride;
  float* q_tile = v_tile + kBwdTile * stride;
  float* dout_tile = q_tile + kBwdTile * stride;
  float* probs = dout_tile + kBwdTile * stride;  // [query][key]
  float* dscores = probs + kBwdTile * kBwdTile;  // [query][key]
  float* lse_tile = dscores + kBwdTile * kBwdTile;
  float* weighted_tile = lse_tile + kBwdTile;
  const int64_t k0 = blockIdx.x * int64_t{kBwdTile}, kh = blockIdx.y, b = blockIdx.z;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t prefix = s.length - s.t;  // query t sees keys pos <= prefix + t
  load_key_tile(s, k, v, b, kh, k0, s.length, k_tile, v_tile);
  const int64_t pos = k0 + lane;
  const bool key_usable = pos < s.length && key_valid[b * s.capacity + pos] != 0;
  float dk_acc[kBwdChunks][4], dv_acc[kBwdChunks][4];
#pragma unroll
  for (int c = 0; c < kBwdChunks; ++c)
    for (int x = 0; x < 4; ++x) dk_acc[c][x] = dv_acc[c][x] = 0.f;
  // The first query that sees key k0 is t = k0 - prefix (earlier ones see none of the
  // tile's keys); start at the query tile holding it.
  const int64_t first_t = k0 > prefix ? k0 - prefix : 0;
  const int64_t first_tile = first_t / kBwdTile * kBwdTile;
  for (int64_t h = kh * s.group; h < (kh + 1) * s.group; ++h) {
    for (int64_t t0 = first_tile; t0 < s.t; t0 += kBwdTile) {
      __syncthreads();  // the previous query tile is consumed (and, the first time, k/v written)
      load_query_tile(s, q, dout, b, h, t0, q_tile, dout_tile);
      if (threadIdx.x < kBwdTile) {
        const int64_t t = t0 + threadIdx.x, row = (b * s.t + t) * s.heads + h;
        lse_tile[threadIdx.x] = t < s.t ? log_sum_exps[row] : 0.f;
        weighted_tile[threadIdx.x] = t < s.t ? weighted_sums[row] : 0.f;
      }
      __syncthreads();
      float score[kBwdQueriesPerWarp], dp[kBwdQueriesPerWarp];
      tile_scores(q_tile, dout_tile, k_tile, v_tile, d, s.scale, score, dp);
#pragma unroll
      for (int qi = 0; qi < kBwdQueriesPerWarp; ++qi) {
        const int r = warp * kBwdQueriesPerWarp + qi;
        const int64_t t = t0 + r;
        const bool seen = key_usable && t < s.t && pos <= prefix + t;
        const float p = seen ? expf(score[qi] - lse_tile[r]) : 0.f;
        probs[r * kBwdTile + lane] = p;
        dscores[r * kBwdTile + lane] = p * (dp[qi] - weighted_tile[r]) * s.scale;
      }
      __syncthreads();
      for (int r = 0; r < kBwdTile; ++r) {
        add_scaled_chunks(dv_acc, probs[r * kBwdTile + lane], dout_tile + r * stride, d);
        add_scaled_chunks(dk_acc, dscores[r * kBwdTile + lane], q_tile + r * stride, d);
      }
    }
  }
  if (pos < s.length) {
    const int64_t offset = kv_offset(s, b, pos, kh);
#pragma unroll
    for (int c = 0; c < kBwdChunks; ++c) {
      const int i = 4 * warp + kBwdChunkDims * c;
      if (i < d) {
        for (int x = 0; x < 4; ++x) {
          dk[offset + i + x] += dk_acc[c][x];
          dv[offset + i + x] += dv_acc[c][x];
        }
      }
    }
  }
}

AttentionDims check_attention(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, int64_t length,
                              const Tensor& key_valid, const Tensor& out) {
  require_dtype(op, "q", q, DType::F32);
  require_dtype(op, "k", k, DType::F32);
  require_dtype(op, "v", v, DType::F32);
  require_dtype(op, "key_valid", key_valid, DType::I32);
  require_dtype(op, "output", out, DType::F32);
  CHECK_EQ(q.ndim(), 4) << op << ": q " << shape_str(q.shape());
  CHECK_EQ(k.ndim(), 4) << op << ": k " << shape_str(k.shape());
  AttentionDims s;
  s.batch = q.dim(0), s.t = q.dim(1), s.heads = q.dim(2), s.d = q.dim(3);
  s.capacity = k.dim(1), s.kv_heads = k.dim(2);
  CHECK(k.dim(0) == s.batch && k.dim(3) == s.d && v.shape() == k.shape())
      << op << ": q " << shape_str(q.shape()) << ", k " << shape_str(k.shape()) << ", v " << shape_str(v.shape());
  CHECK(s.kv_heads > 0 && s.heads % s.kv_heads == 0) << op << ": " << s.heads << " heads, " << s.kv_heads
                                                     << " kv heads";
  CHECK(s.t <= length && length <= s.capacity) << op << ": T " << s.t << ", length " << length << ", capacity "
                                               << s.capacity;
  CHECK_EQ(key_valid.numel(), s.batch * s.capacity) << op << ": key_valid " << shape_str(key_valid.shape());
  CHECK(out.shape() == q.shape()) << op << ": output " << shape_str(out.shape()) << " vs q " << shape_str(q.shape());
  CHECK(s.d > 0 && s.d <= kMaxHeadDim) << op << ": head_dim " << s.d << " (at most " << kMaxHeadDim << ")";
  CHECK(s.heads <= 65535 * 1024 && s.t <= 65535 && s.batch <= 65535) << op << ": grid too large";
  s.group = s.heads / s.kv_heads;
  s.length = length;
  s.scale = 1.0f / std::sqrt(static_cast<float>(s.d));  // as the CPU backend computes it
  return s;
}

AttentionKernels requested_kernels(const std::string& configured, const char* key, const char* variable,
                                   const char* slow_name, AttentionKernels slow) {
  const BackendSetting setting = backend_setting(configured, key, variable);
  const std::string& value = setting.value;
  if (value.empty()) return AttentionKernels::kGemmCausal;
  if (value == "gemm") return AttentionKernels::kGemm;
  if (value == "gemm_causal") return AttentionKernels::kGemmCausal;
  if (value == "gemm_causal_bf16") return AttentionKernels::kGemmCausalBf16;
  if (value == "flash") return AttentionKernels::kFlash;
  if (value == "flash_bf16") return AttentionKernels::kFlashBf16;
  if (value == "tiled") return AttentionKernels::kTiled;
  if (value == slow_name) return slow;
  throw_input_error(setting.named, ": expected gemm, gemm_causal, gemm_causal_bf16, flash, flash_bf16, tiled or ", slow_name);
}

// The batched products' kernels (gemm_attention).
bool uses_gemm(AttentionKernels kernels) {
  return kernels == AttentionKernels::kGemm || runs_causal_blocks(kernels);
}

}  // namespace

const char* attention_kernels_name(AttentionKernels kernels) {
  switch (kernels) {
    case AttentionKernels::kGemm: return "gemm";
    case AttentionKernels::kGemmCausal: return "gemm_causal";
    case AttentionKernels::kGemmCausalBf16: return "gemm_causal_bf16";
    case AttentionKernels::kFlash: return "flash";
    case AttentionKernels::kFlashBf16: return "flash_bf16";
    case AttentionKernels::kTiled: return "tiled";
    case AttentionKernels::kSimple: return "simple";
    case AttentionKernels::kReference: return "reference";
  }
  return "?";
}

AttentionKernels attention_forward_requested(const std::string& configured) {
  return requested_kernels(configured, "cuda.attention", "XCOMP_CUDA_ATTENTION", "simple", AttentionKernels::kSimple);
}

int64_t causal_query_block_requested(int64_t configured) {
  if (configured > 0) return configured;
  const char* text = std::getenv("XCOMP_CUDA_CAUSAL_BLOCK");
  if (text == nullptr || *text == '\0') return kCausalQueryBlock;
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || *end != '\0' || value < 1 || value > (int64_t{1} << 30))
    throw_input_error("XCOMP_CUDA_CAUSAL_BLOCK=", text, ": expected a positive number of queries per block");
  return value;
}

AttentionKernels attention_backward_requested(const std::string& configured) {
  return requested_kernels(configured, "cuda.attention_backward", "XCOMP_CUDA_ATTENTION_BACKWARD", "reference",
                           AttentionKernels::kReference);
}

int64_t CudaOps::gemm_query_block(AttentionKernels kernels, int64_t t) const {
  return runs_causal_blocks(kernels) ? causal_query_block_ : t;
}

bool CudaOps::gemm_bf16_operands(AttentionKernels kernels) const {
  return kernels == AttentionKernels::kGemmCausalBf16 && weight_storage_ == CudaWeightStorage::kBf16;
}

void CudaOps::attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length, const Tensor& key_valid,
                        Tensor& out) {
  const char* op = "attention";
  require_on_device(op, {&q, &k, &v, &key_valid, &out});
  const AttentionDims s = check_attention(op, q, k, v, length, key_valid, out);
  if (s.batch * s.t * s.heads == 0) return;
  const bool flash =
      forward_attention_ == AttentionKernels::kFlash || forward_attention_ == AttentionKernels::kFlashBf16;
  if (flash && flash_applies(s.d)) {
    flash_attention(q, k, v, length, key_valid, out, forward_attention_ == AttentionKernels::kFlashBf16);
    return;
  }
  // Where the flash kernels do not apply, the batched products run.
  const bool forward_bf16 = gemm_bf16_operands(forward_attention_);
  if ((uses_gemm(forward_attention_) || flash) &&
      gemm_attention_applies(s.batch, s.heads, s.t, s.length, s.d, forward_bf16, {&q, &k, &v, &out})) {
    gemm_attention(q, k, v, length, key_valid, nullptr, &out, nullptr, nullptr, nullptr,
                   gemm_query_block(forward_attention_, s.t), forward_bf16);
    return;
  }
  if (s.d <= kTiledMaxHeadDim && forward_attention_ != AttentionKernels::kSimple) {
    const size_t bytes = tiled_shared_bytes(s.d);
    allow_dynamic_shared_memory(attention_tiled_kernel, bytes, op);
    const dim3 grid(static_cast<unsigned>((s.t + kTileQueries - 1) / kTileQueries), static_cast<unsigned>(s.heads),
                    static_cast<unsigned>(s.batch));
    attention_tiled_kernel<<<grid, kTiledWarps * 32, bytes, stream_>>>(
        s, static_cast<const float*>(q.raw()), static_cast<const float*>(k.raw()),
        static_cast<const float*>(v.raw()), static_cast<const int32_t*>(key_valid.raw()),
        static_cast<float*>(out.raw()));
    XCOMP_CUDA_CHECK(cudaGetLastError());
    return;
  }
  const size_t bytes = static_cast<size_t>(s.length) * sizeof(float);
  allow_dynamic_shared_memory(attention_kernel, bytes, op);
  const dim3 grid(static_cast<unsigned>(s.heads), static_cast<unsigned>(s.t), static_cast<unsigned>(s.batch));
  attention_kernel<<<grid, kThreads, bytes, stream_>>>(
      s, static_cast<const float*>(q.raw()), static_cast<const float*>(k.raw()), static_cast<const float*>(v.raw()),
      static_cast<const int32_t*>(key_valid.raw()), static_cast<float*>(out.raw()));
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

void CudaOps::attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                 int64_t length, const Tensor& key_valid, Tensor& dq, Tensor& dk, Tensor& dv) {
  const char* op = "attention_backward";
  require_on_device(op, {&dout, &q, &k, &v, &key_valid, &dq, &dk, &dv});
  const AttentionDims s = check_attention(op, q, k, v, length, key_valid, dout);
  require_dtype(op, "dq", dq, DType::F32);
  require_dtype(op, "dk", dk, DType::F32);
  require_dtype(op, "dv", dv, DType::F32);
  CHECK(dq.shape() == q.shape() && dk.shape() == k.shape() && dv.shape() == v.shape())
      << op << ": dq " << shape_str(dq.shape()) << ", dk " << shape_str(dk.shape()) << ", dv "
      << shape_str(dv.shape());
  if (s.batch * s.t * s.heads == 0) return;
  CHECK_LE(s.length, int64_t{1} << 31) << op << ": too many keys";
  const bool flash =
      backward_attention_ == AttentionKernels::kFlash || backward_attention_ == AttentionKernels::kFlashBf16;
  if (flash && flash_applies(s.d)) {
    flash_attention_backward(dout, q, k, v, length, key_valid, dq, dk, dv,
                             backward_attention_ == AttentionKernels::kFlashBf16);
    return;
  }
  // Where the flash kernels do not apply, the batched products run.
  const bool backward_bf16 = gemm_bf16_operands(backward_attention_);
  if ((uses_gemm(backward_attention_) || flash) &&
      gemm_attention_applies(s.batch, s.heads, s.t, s.length, s.d, backward_bf16,
                             {&dout, &q, &k, &v, &dq, &dk, &dv})) {
    gemm_attention(q, k, v, length, key_valid, &dout, nullptr, &dq, &dk, &dv,
                   gemm_query_block(backward_attention_, s.t), backward_bf16);
    return;
  }
  // Per query: log-sum-exp of the scores and D = sum_j P_j dP_j, read by the key pass.
  Tensor log_sum_exps = empty({s.batch * s.t * s.heads}), weighted_sums = empty({s.batch * s.t * s.heads});
  if (tiled_backward_applies(s.d) && backward_attention_ != AttentionKernels::kReference) {
    const size_t query_bytes = backward_query_shared_bytes(s.d), key_bytes = backward_key_shared_bytes(s.d);
    allow_dynamic_shared_memory(attention_backward_query_tiled_kernel, query_bytes, op);
    allow_dynamic_shared_memory(attention_backward_key_tiled_kernel, key_bytes, op);
    const dim3 query_grid(static_cast<unsigned>((s.t + kBwdTile - 1) / kBwdTile), static_cast<unsigned>(s.heads),
                          static_cast<unsigned>(s.batch));
    attention_backward_query_tiled_kernel<<<query_grid, kBwdThreads, query_bytes, stream_>>>(
        s, static_cast<const float*>(dout.raw()), static_cast<const float*>(q.raw()),
        static_cast<const float*>(k.raw()), static_cast<const float*>(v.raw()),
        static_cast<const int32_t*>(key_valid.raw()), static_cast<float*>(dq.raw()),
        static_cast<float*>(log_sum_exps.raw()), static_cast<float*>(weighted_sums.raw()));
    XCOMP_CUDA_CHECK(cudaGetLastError());
    // The first key tiles see every query: low block indices, scheduled first, so the
    // long blocks do not trail at the end.
    const dim3 key_grid(static_cast<unsigned>((s.length + kBwdTile - 1) / kBwdTile),
                        static_cast<unsigned>(s.kv_heads), static_cast<unsigned>(s.batch));
    attention_backward_key_tiled_kernel<<<key_grid, kBwdThreads, key_bytes, stream_>>>(
        s, static_cast<const float*>(dout.raw()), static_cast<const float*>(q.raw()),
        static_cast<const float*>(k.raw()), static_cast<const float*>(v.raw()),
        static_cast<const int32_t*>(key_valid.raw()), static_cast<const float*>(log_sum_exps.raw()),
        static_cast<const float*>(weighted_sums.raw()), static_cast<float*>(dk.raw()), static_cast<float*>(dv.raw()));
    XCOMP_CUDA_CHECK(cudaGetLastError());
    return;
  }
  const size_t bytes = 2 * static_cast<size_t>(s.length) * sizeof(float);
  allow_dynamic_shared_memory(attention_backward_query_kernel, bytes, op);
  const dim3 query_grid(static_cast<unsigned>(s.heads), static_cast<unsigned>(s.t), static_cast<unsigned>(s.batch));
  attention_backward_query_kernel<<<query_grid, kThreads, bytes, stream_>>>(
      s, static_cast<const float*>(dout.raw()), static_cast<const float*>(q.raw()),
      static_cast<const float*>(k.raw()), static_cast<const float*>(v.raw()),
      static_cast<const int32_t*>(key_valid.raw()), static_cast<float*>(dq.raw()),
      static_cast<float*>(log_sum_exps.raw()), static_cast<float*>(weighted_sums.raw()));
  XCOMP_CUDA_CHECK(cudaGetLastError());
  const dim3 key_grid(static_cast<unsigned>(s.length), static_cast<unsigned>(s.kv_heads),
                      static_cast<unsigned>(s.batch));
  attention_backward_key_kernel<<<key_grid, kThreads, 0, stream_>>>(
      s, static_cast<const float*>(dout.raw()), static_cast<const float*>(q.raw()),
      static_cast<const float*>(k.raw()), static_cast<const float*>(v.raw()),
      static_cast<const int32_t*>(key_valid.raw()), static_cast<const float*>(log_sum_exps.raw()),
      static_cast<const float*>(weighted_sums.raw()), static_cast<float*>(dk.raw()), static_cast<float*>(dv.raw()));
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace xcomp::cuda
