// Attention through cuBLAS's batched products: the scores of every (row, head) are
// materialised as a [T, length] matrix (rows padded to a multiple of 16 floats), so the
// two products of the forward and the four of the backward run on the tensor cores, and
// only the masked softmax and its backward are our own kernels (one warp per query row;
// score_rows.h).
// It costs 2 x batch x heads x T x (length padded) floats of workspace (about 250 MB at
// LLaMA-3-8B's 480-token training shape) and the product over the masked half of the
// causal square; at head_dim 128 that is a few milliseconds of tensor-core time against
// the CUDA-core tiles' hundreds (see cuda_attention.cu, which dispatches here and keeps
// those kernels as the cross-check).
//
// Precision: where the frozen weights are bf16 the products take TF32 (10-bit mantissa,
// scores within about 1e-3 relative: inside the bf16 step's own error), or with
// bf16_operands (AttentionKernels::kGemmCausalBf16) bf16 copies of q, k, v and dout, and P
// and dS written rounded to bf16 by the row kernels, as PyTorch's bf16 attention rounds
// them: half the bytes each product reads and twice the tensor-core rate; where they are
// fp32 the products are true fp32 (CUBLAS_COMPUTE_32F_PEDANTIC), as the linear products.
// Either way the scores, dP, the softmax and its backward are fp32, and every product
// accumulates in fp32.
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
// The last two sum over the `group` query heads of a kv head: one batched call per head of
// the group (the calls of one batch must not write the same output), each adding.
//
// Causal query blocks (query_block < T, AttentionKernels::kGemmCausal): queries
// [t0, t1) see at most keys [0, length - T + t1), so each block's products run over
// those keys only (the m, n or k above that is `length` becomes that count, and the
// block's rows of q, out, dout, dq and of the score matrices are offset by t0). Entries
// of a score row past its block's keys are never written nor read; with one block the
// calls are the ones above.
#include <cuda_bf16.h>
#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "model/cuda/cuda_backend.h"
#include "model/cuda/cuda_check.h"
#include "model/cuda/device_thread.cuh"
#include "model/cuda/score_rows.h"

namespace xcomp::cuda {

namespace {

constexpr int kRowsPerBlock = 8;  // one warp per query row
// Past this much workspace (two score matrices) the tiled kernels take over.
constexpr int64_t kMaxWorkspaceBytes = int64_t{6} << 30;

using score_rows::GemmAttentionShape;
using score_rows::block_keys;
using score_rows::score_row_stride;
using score_rows::score_rows_of;

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
enum Table { kQ, kK, kV, kDout, kOut, kDq, kDk, kDv, kScores, kProbabilities, kDp, kDs, kPointerTables };

// Each table's base (null where the call has none) and the bytes of its entries.
struct TableBases {
  const char* at[kPointerTables] = {};
  int element_bytes[kPointerTables] = {};
};

__global__ void fill_pointer_tables(GemmAttentionShape s, int64_t blocks, TableBases base, const void** tables) {
  const int64_t count = s.batch * s.heads;
  const int64_t entry = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (entry >= count * blocks) return;
  const int64_t i = entry % count, block = entry / count, t0 = block * s.query_block;
  const int64_t kh = i % s.kv_heads, b = (i / s.kv_heads) % s.batch, g = i / (s.kv_heads * s.batch);
  const int64_t h = kh * s.group + g;
  const int64_t query_at = ((b * s.t + t0) * s.heads + h) * s.d, key_at = (b * s.capacity * s.kv_heads + kh) * s.d;
  const int64_t scores_at = ((b * s.heads + h) * s.t + t0) * s.score_stride;
  const void** block_tables = tables + block * kPointerTables * count;
  auto put = [&](Table table, int64_t at) {
    block_tables[table * count + i] = base.at[table] ? base.at[table] + at * base.element_bytes[table] : nullptr;
  };
  put(kQ, query_at), put(kDout, query_at), put(kOut, query_at), put(kDq, query_at);
  put(kK, key_at), put(kV, key_at), put(kDk, key_at), put(kDv, key_at);
  put(kScores, scores_at), put(kProbabilities, scores_at), put(kDp, scores_at), put(kDs, scores_at);
}

// Entries [0, length) of each row of a key/value store [B, capacity, kv_heads, D] in
// bf16, at the same places of a store of the same shape (entries past them unwritten:
// no product reads them).
__global__ void key_rows_to_bf16_kernel(const float* x, int64_t batch, int64_t row_elements, int64_t capacity_elements,
                                        __nv_bfloat16* y) {
  const int64_t n = batch * row_elements;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t at = i / row_elements * capacity_elements + i % row_elements;
    y[at] = __float2bfloat16_rn(x[at]);
  }
}

// One warp per score row (score_rows.h), kRowsPerBlock rows a block; a warp past the last
// row returns whole, so the others' shuffles still see every lane.
template <int kPerLane, class P>
__global__ void masked_softmax_in_registers_kernel(GemmAttentionShape s, const int32_t* key_valid, const float* scores,
                                                   P* probabilities) {
  const int64_t row = blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / 32;
  if (row >= score_rows_of(s)) return;
  score_rows::masked_softmax_row_in_registers<kPerLane>(DeviceThread{}, s, key_valid, scores, probabilities, row);
}

template <class P>
__global__ void masked_softmax_looped_kernel(GemmAttentionShape s, const int32_t* key_valid, const float* scores,
                                             P* probabilities) {
  const int64_t row = blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / 32;
  if (row >= score_rows_of(s)) return;
  score_rows::masked_softmax_row_looped(DeviceThread{}, s, key_valid, scores, probabilities, row);
}

template <int kPerLane, class P, class G>
__global__ void softmax_backward_in_registers_kernel(GemmAttentionShape s, float scale, const P* probabilities,
                                                     const float* dp, G* grads) {
  const int64_t row = blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / 32;
  if (row >= score_rows_of(s)) return;
  score_rows::softmax_backward_row_in_registers<kPerLane>(DeviceThread{}, s, scale, probabilities, dp, grads, row);
}

template <class P, class G>
__global__ void softmax_backward_looped_kernel(GemmAttentionShape s, float scale, const P* probabilities,
                                               const float* dp, G* grads) {
  const int64_t row = blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / 32;
  if (row >= score_rows_of(s)) return;
  score_rows::softmax_backward_row_looped(DeviceThread{}, s, scale, probabilities, dp, grads, row);
}

unsigned row_blocks(const GemmAttentionShape& s) {
  return static_cast<unsigned>((score_rows_of(s) + kRowsPerBlock - 1) / kRowsPerBlock);
}

// P = masked softmax of `scores` into `probabilities` (float: in place; bf16: rounded),
// in registers where a row fits them.
template <class P>
void masked_softmax(const GemmAttentionShape& s, const int32_t* key_valid, const float* scores, P* probabilities,
                    cudaStream_t stream) {
  if (score_rows::row_registers(s.length) == 0) {
    masked_softmax_looped_kernel<<<row_blocks(s), kRowsPerBlock * 32, 0, stream>>>(s, key_valid, scores,
                                                                                    probabilities);
  } else {
    score_rows::with_row_registers(s.length, [&](auto per_lane) {
      masked_softmax_in_registers_kernel<decltype(per_lane)::value>
          <<<row_blocks(s), kRowsPerBlock * 32, 0, stream>>>(s, key_valid, scores, probabilities);
    });
  }
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

// dS from P and dP into `grads` (float: in place of dP; bf16: rounded).
template <class P, class G>
void softmax_backward(const GemmAttentionShape& s, float scale, const P* probabilities, const float* dp, G* grads,
                      cudaStream_t stream) {
  if (score_rows::row_registers(s.length) == 0) {
    softmax_backward_looped_kernel<<<row_blocks(s), kRowsPerBlock * 32, 0, stream>>>(s, scale, probabilities, dp,
                                                                                      grads);
  } else {
    score_rows::with_row_registers(s.length, [&](auto per_lane) {
      softmax_backward_in_registers_kernel<decltype(per_lane)::value>
          <<<row_blocks(s), kRowsPerBlock * 32, 0, stream>>>(s, scale, probabilities, dp, grads);
    });
  }
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

int checked_int(int64_t v, const char* op) {
  CHECK(v <= std::numeric_limits<int>::max()) << op << ": dimension " << v << " exceeds cuBLAS's int range";
  return static_cast<int>(v);
}

}  // namespace

bool CudaOps::gemm_attention_fits(int64_t batch, int64_t heads, int64_t t, int64_t length) const {
  const int64_t entries = batch * heads * t * score_row_stride(length);
  return entries <= std::numeric_limits<int>::max() && 2 * entries * int64_t{sizeof(float)} <= kMaxWorkspaceBytes;
}

// One batched product over `count` entries of the tables from entry `first`:
// C_i = alpha op(A_i) op(B_i) + beta C_i, C fp32; A and B of `ab_type`: bf16 (fp32
// accumulation), or fp32 (TF32 with bf16 weights, else true fp32).
void CudaOps::attention_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
                             const void* const* a, int lda, const void* const* b, int ldb, float beta,
                             void* const* c, int ldc, int count, cudaDataType ab_type) {
  const cublasComputeType_t compute = ab_type == CUDA_R_16BF                          ? CUBLAS_COMPUTE_32F
                                      : weight_storage_ == CudaWeightStorage::kBf16 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                                    : CUBLAS_COMPUTE_32F_PEDANTIC;
  cublasStatus_t status = cublasGemmBatchedEx(cublas_, ta, tb, m, n, k, &alpha, a, ab_type, lda, b, ab_type, ldb,
                                              &beta, c, CUDA_R_32F, ldc, count, compute, CUBLAS_GEMM_DEFAULT);
  if (status == CUBLAS_STATUS_NOT_SUPPORTED && compute == CUBLAS_COMPUTE_32F_PEDANTIC) {
    LOG_FIRST_N(WARNING, 1) << "cuBLAS offers no pedantic fp32 batched product here; using CUBLAS_COMPUTE_32F";
    status = cublasGemmBatchedEx(cublas_, ta, tb, m, n, k, &alpha, a, CUDA_R_32F, lda, b, CUDA_R_32F, ldb, &beta, c,
                                 CUDA_R_32F, ldc, count, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  }
  XCOMP_CUBLAS_CHECK(status);
}

void CudaOps::gemm_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length,
                             const Tensor& key_valid, const Tensor* dout, Tensor* out, Tensor* dq, Tensor* dk,
                             Tensor* dv, int64_t query_block, bool bf16_operands) {
  const char* op = dout ? "attention_backward" : "attention";
  GemmAttentionShape s;
  s.batch = q.dim(0), s.t = q.dim(1), s.heads = q.dim(2), s.d = q.dim(3);
  s.capacity = k.dim(1), s.kv_heads = k.dim(2), s.length = length, s.group = s.heads / s.kv_heads;
  CHECK_GT(query_block, 0) << op << ": query block " << query_block;
  s.query_block = std::min(query_block, s.t);
  s.score_stride = score_row_stride(s.length);
  const int64_t blocks = (s.t + s.query_block - 1) / s.query_block;
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.d));  // as the CPU backend computes it
  const int64_t count = s.batch * s.heads, group_count = s.batch * s.kv_heads;
  const int ld_scores = checked_int(s.score_stride, op), d = checked_int(s.d, op);
  const int ld_query = checked_int(s.heads * s.d, op), ld_key = checked_int(s.kv_heads * s.d, op);
  const cudaDataType ab_type = bf16_operands ? CUDA_R_16BF : CUDA_R_32F;
  const int operand_bytes = bf16_operands ? 2 : 4;
  const Shape score_shape{s.batch, s.heads, s.t, s.score_stride};

  // The operands: the fp32 tensors, or bf16 copies of the entries the products read.
  Tensor q16, k16, v16, dout16;
  if (bf16_operands) {
    q16 = to_bf16(q);
    if (dout) dout16 = to_bf16(*dout);
    const int64_t width = s.kv_heads * s.d;
    for (auto [from, to] : {std::pair{&k, &k16}, std::pair{&v, &v16}}) {
      *to = empty(from->shape(), DType::BF16);
      const int64_t n = s.batch * s.length * width;
      if (n == 0) continue;
      key_rows_to_bf16_kernel<<<elementwise_blocks(n, 256), 256, 0, stream_>>>(
          static_cast<const float*>(from->raw()), s.batch, s.length * width, s.capacity * width,
          static_cast<__nv_bfloat16*>(to->raw()));
      XCOMP_CUDA_CHECK(cudaGetLastError());
    }
  }
  // S (then P in place on the fp32 path; dP on the bf16 backward's); the fp32 path's dP
  // then dS; the bf16 path's P and dS.
  Tensor scores = empty(score_shape);
  Tensor grads = dout && !bf16_operands ? empty(score_shape) : Tensor();
  Tensor probabilities16 = bf16_operands ? empty(score_shape, DType::BF16) : Tensor();
  Tensor grads16 = dout && bf16_operands ? empty(score_shape, DType::BF16) : Tensor();

  TableBases base;
  auto set = [&](Table table, const Tensor* x, int bytes) {
    base.at[table] = x && x->defined() ? static_cast<const char*>(x->raw()) : nullptr;
    base.element_bytes[table] = bytes;
  };
  set(kQ, bf16_operands ? &q16 : &q, operand_bytes);
  set(kK, bf16_operands ? &k16 : &k, operand_bytes);
  set(kV, bf16_operands ? &v16 : &v, operand_bytes);
  set(kDout, bf16_operands ? &dout16 : dout, operand_bytes);
  set(kOut, out, 4), set(kDq, dq, 4), set(kDk, dk, 4), set(kDv, dv, 4);
  set(kScores, &scores, 4);
  set(kProbabilities, bf16_operands ? &probabilities16 : &scores, operand_bytes);
  set(kDp, dout ? (bf16_operands ? &scores : &grads) : nullptr, 4);
  set(kDs, dout ? (bf16_operands ? &grads16 : &grads) : nullptr, operand_bytes);

  std::shared_ptr<void> table_block = allocator_->allocate(blocks * kPointerTables * count * sizeof(void*));
  const void** tables = static_cast<const void**>(table_block.get());
  fill_pointer_tables<<<static_cast<unsigned>((blocks * count + 255) / 256), 256, 0, stream_>>>(s, blocks, base,
                                                                                                   tables);
  XCOMP_CUDA_CHECK(cudaGetLastError());
  const int n_all = checked_int(count, op), n_group = checked_int(group_count, op);

  // Block i: queries [t0, t0 + rows) with t0 = i * query_block, multiplied with keys
  // [0, keys); its tables start at i * kPointerTables * count.
  struct QueryBlock {
    int64_t index;
    int rows, keys;
  };
  std::vector<QueryBlock> query_blocks;
  for (int64_t i = 0; i < blocks; ++i) {
    const int64_t t0 = i * s.query_block;
    query_blocks.push_back({i, checked_int(std::min(s.query_block, s.t - t0), op), checked_int(block_keys(s, t0), op)});
  }
  auto table = [&](const QueryBlock& qb, Table which, int64_t first = 0) {
    return tables + (qb.index * kPointerTables + which) * count + first;
  };
  auto out_table = [&](const QueryBlock& qb, Table which, int64_t first = 0) {
    return const_cast<void* const*>(table(qb, which, first));
  };
  float* const score_entries = static_cast<float*>(scores.raw());
  const int32_t* const valid = static_cast<const int32_t*>(key_valid.raw());

  // S = scale * q . k^T, then P = masked softmax(S).
  for (const QueryBlock& qb : query_blocks)
    attention_gemm(CUBLAS_OP_T, CUBLAS_OP_N, qb.keys, qb.rows, d, scale, table(qb, kK), ld_key, table(qb, kQ),
                   ld_query, 0.f, out_table(qb, kScores), ld_scores, n_all, ab_type);
  if (bf16_operands)
    masked_softmax(s, valid, score_entries, static_cast<score_rows::Bf16Bits*>(probabilities16.raw()), stream_);
  else
    masked_softmax(s, valid, score_entries, score_entries, stream_);
  if (!dout) {
    for (const QueryBlock& qb : query_blocks)
      attention_gemm(CUBLAS_OP_N, CUBLAS_OP_N, d, qb.rows, qb.keys, 1.f, table(qb, kV), ld_key,
                     table(qb, kProbabilities), ld_scores, 0.f, out_table(qb, kOut), ld_query, n_all, ab_type);
    return;
  }
  // dP = dout . v^T, then dS; dq = dS . k (overwritten), dk += dS^T . q and
  // dv += P^T . dout (added, one head of each group at a time).
  for (const QueryBlock& qb : query_blocks)
    attention_gemm(CUBLAS_OP_T, CUBLAS_OP_N, qb.keys, qb.rows, d, 1.f, table(qb, kV), ld_key, table(qb, kDout),
                   ld_query, 0.f, out_table(qb, kDp), ld_scores, n_all, ab_type);
  if (bf16_operands) {
    softmax_backward(s, scale, static_cast<const score_rows::Bf16Bits*>(probabilities16.raw()), score_entries,
                     static_cast<score_rows::Bf16Bits*>(grads16.raw()), stream_);
  } else {
    float* const grad_rows = static_cast<float*>(grads.raw());
    softmax_backward(s, scale, static_cast<const float*>(score_entries), grad_rows, grad_rows, stream_);
  }
  for (const QueryBlock& qb : query_blocks) {
    attention_gemm(CUBLAS_OP_N, CUBLAS_OP_N, d, qb.rows, qb.keys, 1.f, table(qb, kK), ld_key, table(qb, kDs),
                   ld_scores, 0.f, out_table(qb, kDq), ld_query, n_all, ab_type);
    for (int64_t g = 0; g < s.group; ++g) {
      const int64_t first = g * group_count;
      attention_gemm(CUBLAS_OP_N, CUBLAS_OP_T, d, qb.keys, qb.rows, 1.f, table(qb, kQ, first), ld_query,
                     table(qb, kDs, first), ld_scores, 1.f, out_table(qb, kDk, first), ld_key, n_group, ab_type);
      attention_gemm(CUBLAS_OP_N, CUBLAS_OP_T, d, qb.keys, qb.rows, 1.f, table(qb, kDout, first), ld_query,
                     table(qb, kProbabilities, first), ld_scores, 1.f, out_table(qb, kDv, first), ld_key, n_group,
                     ab_type);
    }
  }
}

}  // namespace xcomp::cuda
