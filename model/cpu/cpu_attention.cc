// Grouped-query causal attention of the CPU backend (see Ops::attention for the
// visibility rule), as matrix products per (row, kv head): the queries of the kv head's
// group of heads are stacked into one block Q [group * T, d] (row g * T + t), so
// S = scale Q K^T and O = P V, and in backward dP = dO V^T, dQ = dS K, dK += dS^T Q,
// dV += P^T dO, are one cpu_sgemm call each (K and V are read in place as strided
// views). Small products are dominated by per-call cost, so fewer, larger calls win.
// Between them the masked softmax runs row by row over contiguous scores and
// vectorises. A (row, kv head) belongs to one thread, which owns its dk/dv (no races).
// Scores above the causal diagonal are computed and then zeroed: simpler and, at these
// sizes, cheaper than splitting the products. A forward over several queries keeps its
// probabilities for the backward of the same inputs (attention_probability_cache.h),
// which then skips the scores and the softmax.
#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "model/cpu/cpu_gemm.h"

#include "model/cpu/cpu_exp.h"
#include "model/cpu/cpu_ops.h"
#include "model/cpu/parallel_work.h"

namespace xcomp {

namespace {

struct AttentionShape {
  int64_t b, t, heads, d, capacity, kv_heads, group, length;
  float scale;
};

AttentionShape check_shapes(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length, const Tensor& valid,
                            const Tensor& out) {
  CHECK_EQ(q.ndim(), 4);
  CHECK_EQ(k.ndim(), 4);
  AttentionShape s;
  s.b = q.dim(0), s.t = q.dim(1), s.heads = q.dim(2), s.d = q.dim(3);
  s.capacity = k.dim(1), s.kv_heads = k.dim(2);
  CHECK_EQ(k.dim(0), s.b);
  CHECK_EQ(k.dim(3), s.d);
  CHECK(v.shape() == k.shape());
  CHECK_EQ(s.heads % s.kv_heads, 0);
  CHECK(s.t <= length && length <= s.capacity) << "attention: T " << s.t << ", length " << length << ", capacity "
                                              << s.capacity;
  CHECK_EQ(valid.numel(), s.b * s.capacity);
  CHECK(out.shape() == q.shape());
  s.group = s.heads / s.kv_heads;
  s.length = length;
  s.scale = 1.0f / std::sqrt(static_cast<float>(s.d));
  return s;
}

// One (row, kv head): where its keys and values start and their row stride, and the
// stacked query-shaped blocks of its group of heads.
struct KvHead {
  int64_t kv_offset, kv_stride;
  int64_t q_offset;  // of head kh * group at t = 0 in q-shaped tensors
};

KvHead kv_head(const AttentionShape& s, int64_t bi, int64_t kh) {
  return {(bi * s.capacity * s.kv_heads + kh) * s.d, s.kv_heads * s.d, (bi * s.t * s.heads + kh * s.group) * s.d};
}

// block [group * T, d] <- the group's rows of a q-shaped tensor, and back.
void stack_group(const AttentionShape& s, const KvHead& at, const float* src, float* block) {
  for (int64_t g = 0; g < s.group; ++g)
    for (int64_t ti = 0; ti < s.t; ++ti)
      std::copy_n(src + at.q_offset + ti * s.heads * s.d + g * s.d, s.d, block + (g * s.t + ti) * s.d);
}

void unstack_group(const AttentionShape& s, const KvHead& at, const float* block, float* dst) {
  for (int64_t g = 0; g < s.group; ++g)
    for (int64_t ti = 0; ti < s.t; ++ti)
      std::copy_n(block + (g * s.t + ti) * s.d, s.d, dst + at.q_offset + ti * s.heads * s.d + g * s.d);
}

// Score rows are padded to a multiple of kLanes floats and the softmax loops run over
// whole multiples of it (the causal limit is part of the mask): rows are short (T, ~100),
// so per-loop remainder handling would otherwise cost as much as the work.
constexpr int64_t kLanes = 16;

int64_t padded(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

// scores [group * T, stride] (scale Q K^T) -> probabilities in place: row g * T + t is
// the softmax over the keys query t sees, 0 elsewhere (all 0 when it sees none).
// valid: the row's key validity, zero-padded to `stride`.
void masked_softmax_rows(const AttentionShape& s, const int32_t* valid, int64_t stride, float* scores) {
  constexpr float kInvisible = -std::numeric_limits<float>::infinity();
  for (int64_t r = 0; r < s.group * s.t; ++r) {
    float* row = scores + r * stride;
    const int64_t n = s.length - s.t + r % s.t + 1;  // keys [0, n) precede or are the query
    const int64_t width = padded(n);
    float max_score = kInvisible;
#pragma omp simd reduction(max : max_score)
    for (int64_t pos = 0; pos < width; ++pos) {
      const float score = pos < n && valid[pos] ? row[pos] : kInvisible;
      row[pos] = score;
      max_score = std::max(max_score, score);
    }
    std::fill(row + width, row + stride, 0.0f);
    if (max_score == kInvisible) {
      std::fill(row, row + width, 0.0f);
      continue;
    }
    // Weights below e^-64 of the largest cannot change a float sum of them; setting them
    // to 0 keeps denormals (slow on x86) out of this and the later products.
    constexpr float kNegligible = -64.0f;
    float total = 0;
#pragma omp simd reduction(+ : total)
    for (int64_t pos = 0; pos < width; ++pos) {
      const float x = row[pos] - max_score;
      const float e = x < kNegligible ? 0.0f : vector_exp(x);
      row[pos] = e;
      total += e;
    }
    const float inv = 1.0f / total;
#pragma omp simd
    for (int64_t pos = 0; pos < width; ++pos) row[pos] *= inv;
  }
}

// Per-thread buffers for one (row, kv head).
struct GroupWork {
  explicit GroupWork(const AttentionShape& s)
      : rows(s.group * s.t), stride(padded(s.length)), q(rows * s.d), dout(rows * s.d), out(rows * s.d),
        p(rows * stride), ds(rows * stride), valid(stride) {}
  int64_t rows, stride;  // stride: of the score rows
  std::vector<float> q, dout, out, p, ds;
  std::vector<int32_t> valid;
};

// p [rows, stride] = the probabilities of the group's stacked queries w.q.
void probabilities(const AttentionShape& s, const KvHead& at, const float* k, const int32_t* valid, GroupWork& w,
                   float* p) {
  std::copy_n(valid, s.length, w.valid.begin());  // the tail stays 0
  cpu_sgemm(false, true, w.rows, s.length, s.d, s.scale, w.q.data(), s.d, k + at.kv_offset, at.kv_stride, 0.0f, p,
            w.stride);
  masked_softmax_rows(s, w.valid.data(), w.stride, p);
}

// The cache key of a call: everything the probabilities depend on.
AttentionProbabilityCache::Inputs cache_inputs(const AttentionShape& s, const Tensor& q, const Tensor& k,
                                               const Tensor& valid) {
  return {{s.b, s.t, s.heads, s.d, s.capacity, s.kv_heads, s.length},
          q.data<float>(),
          static_cast<size_t>(q.numel()),
          k.data<float>(),
          static_cast<size_t>(k.numel()),
          valid.data<int32_t>(),
          static_cast<size_t>(valid.numel())};
}

// Floats of one (row, kv head)'s probabilities, as GroupWork lays them out.
int64_t group_probability_count(const AttentionShape& s) { return s.group * s.t * padded(s.length); }

}  // namespace

void CpuOps::attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length, const Tensor& key_valid,
                       Tensor& out) {
  const AttentionShape s = check_shapes(q, k, v, length, key_valid, out);
  const float* qs = q.data<float>();
  const float* ks = k.data<float>();
  const float* vs = v.data<float>();
  const int32_t* valid = key_valid.data<int32_t>();
  float* os = out.data<float>();
  // Kept for a backward unless this is a decoding step (one query: no backward follows,
  // and copying the key cache every token would cost as much as the step).
  const AttentionProbabilityCache::Inputs inputs = cache_inputs(s, q, k, key_valid);
  const int64_t per_group = group_probability_count(s);
  const size_t kept_count = static_cast<size_t>(s.b * s.kv_heads * per_group);
  AttentionProbabilityCache::Buffer kept;
  if (s.t > 1 && attention_cache_.fits(inputs, kept_count)) kept = attention_cache_.acquire(kept_count);
#pragma omp parallel if (worth_parallel(s.b * s.heads * s.t * s.length * s.d))
  {
    GroupWork w(s);
#pragma omp for collapse(2) schedule(static)
    for (int64_t bi = 0; bi < s.b; ++bi) {
      for (int64_t kh = 0; kh < s.kv_heads; ++kh) {
        const KvHead at = kv_head(s, bi, kh);
        float* p = kept ? kept.get() + (bi * s.kv_heads + kh) * per_group : w.p.data();
        stack_group(s, at, qs, w.q.data());
        probabilities(s, at, ks, valid + bi * s.capacity, w, p);
        cpu_sgemm(false, false, w.rows, s.d, s.length, 1.0f, p, w.stride, vs + at.kv_offset, at.kv_stride, 0.0f,
                  w.out.data(), s.d);
        unstack_group(s, at, w.out.data(), os);
      }
    }
  }
  if (kept) attention_cache_.put(inputs, std::move(kept), kept_count);
}

void CpuOps::attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                int64_t length, const Tensor& key_valid, Tensor& dq, Tensor& dk, Tensor& dv) {
  const AttentionShape s = check_shapes(q, k, v, length, key_valid, dout);
  CHECK(dq.shape() == q.shape() && dk.shape() == k.shape() && dv.shape() == v.shape());
  const float* qs = q.data<float>();
  const float* ks = k.data<float>();
  const float* vs = v.data<float>();
  const float* dos = dout.data<float>();
  const int32_t* valid = key_valid.data<int32_t>();
  float* dqs = dq.data<float>();
  float* dks = dk.data<float>();
  float* dvs = dv.data<float>();
  // The forward's probabilities when it kept them for exactly these inputs.
  const int64_t per_group = group_probability_count(s);
  AttentionProbabilityCache::Buffer kept = attention_cache_.take(
      cache_inputs(s, q, k, key_valid), static_cast<size_t>(s.b * s.kv_heads * per_group));
#pragma omp parallel if (worth_parallel(s.b * s.heads * s.t * s.length * s.d))
  {
    GroupWork w(s);
#pragma omp for collapse(2) schedule(static)
    for (int64_t bi = 0; bi < s.b; ++bi) {
      for (int64_t kh = 0; kh < s.kv_heads; ++kh) {
        const KvHead at = kv_head(s, bi, kh);
        stack_group(s, at, qs, w.q.data());
        stack_group(s, at, dos, w.dout.data());
        const float* p = w.p.data();
        if (kept) {
          p = kept.get() + (bi * s.kv_heads + kh) * per_group;
        } else {
          probabilities(s, at, ks, valid + bi * s.capacity, w, w.p.data());
        }
        // dP = dO V^T, then dS = P (dP - sum_j P_j dP_j) * scale, row by row.
        cpu_sgemm(false, true, w.rows, s.length, s.d, 1.0f, w.dout.data(), s.d, vs + at.kv_offset, at.kv_stride, 0.0f,
                  w.ds.data(), w.stride);
        for (int64_t r = 0; r < w.rows; ++r) {
          const float* pr = p + r * w.stride;
          float* dr = w.ds.data() + r * w.stride;
          const int64_t width = padded(s.length - s.t + r % s.t + 1);  // P is 0 beyond
          float weighted = 0;
#pragma omp simd reduction(+ : weighted)
          for (int64_t pos = 0; pos < width; ++pos) weighted += pr[pos] * dr[pos];
#pragma omp simd
          for (int64_t pos = 0; pos < width; ++pos) dr[pos] = pr[pos] * (dr[pos] - weighted) * s.scale;
          std::fill(dr + width, dr + w.stride, 0.0f);
        }
        cpu_sgemm(false, false, w.rows, s.d, s.length, 1.0f, w.ds.data(), w.stride, ks + at.kv_offset, at.kv_stride,
                  0.0f, w.out.data(), s.d);
        unstack_group(s, at, w.out.data(), dqs);
        cpu_sgemm(true, false, s.length, s.d, w.rows, 1.0f, w.ds.data(), w.stride, w.q.data(), s.d, 1.0f,
                  dks + at.kv_offset, at.kv_stride);
        cpu_sgemm(true, false, s.length, s.d, w.rows, 1.0f, p, w.stride, w.dout.data(), s.d, 1.0f,
                  dvs + at.kv_offset, at.kv_stride);
      }
    }
  }
  attention_cache_.recycle(std::move(kept));  // the next forward's buffer
}

}  // namespace xcomp
