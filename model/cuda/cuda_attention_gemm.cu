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
// The products, their order and the pointer tables' layout are gemm_attention_plan.h's
// (the unit suite runs the same plan on the CPU); this file runs them through cuBLAS.
#include <cuda_bf16.h>
#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "model/cuda/cuda_backend.h"
#include "model/cuda/cuda_check.h"
#include "model/cuda/device_thread.cuh"
#include "model/cuda/gemm_attention_plan.h"
#include "model/cuda/score_rows.h"
#include "model/input_error.h"

namespace xcomp::cuda {

namespace {

constexpr int kRowsPerBlock = 8;  // one warp per query row
// Past this much workspace (two score matrices) the tiled kernels take over.
constexpr int64_t kMaxWorkspaceBytes = int64_t{6} << 30;

using score_rows::GemmAttentionShape;
using score_rows::score_row_stride;

using gemm_attention::kTables;
using gemm_attention::Table;

// Each table's base (null where the call has none) and the bytes of its entries; with
// bf16_copies the operands are the bf16 path's copies (gemm_attention::table_offset).
struct TableBases {
  const char* at[kTables] = {};
  int element_bytes[kTables] = {};
  bool bf16_copies = false;
};

// Every block's tables: entry i of block `block`'s table `table` at
// tables[(block * kTables + table) * count + i], count = batch x heads.
__global__ void fill_pointer_tables(GemmAttentionShape s, int64_t blocks, TableBases base, const void** tables) {
  const int64_t count = s.batch * s.heads;
  const int64_t entry = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (entry >= count * blocks) return;
  const int64_t i = entry % count, block = entry / count;
  for (int table = 0; table < kTables; ++table) {
    const char* at = base.at[table];
    tables[(block * kTables + table) * count + i] =
        at ? at + gemm_attention::table_offset(s, base.bf16_copies, table, block, i) *
                      base.element_bytes[table]
           : nullptr;
  }
}

// The bf16 copies are made a source row per thread block: a row's floats read once, four
// at a time, with no 64-bit division per element.
// (queries_to_head_major_bf16_kernel spreads its own row, heads x D floats, over the
// block; row_to_bf16 serves the key rows.)
constexpr int kCopyThreads = 256;

// Floats [0, n) of `from` (contiguous) to bf16 at `to`, or zeros where `from` is null,
// four at a time: `from` is 16-byte aligned, `to` 8-byte aligned and n a multiple of 4
// (gemm_attention_applies: head_dim a multiple of 8, storage aligned).
__device__ void row_to_bf16(const float* from, int n, __nv_bfloat16* to) {
  for (int i = 4 * threadIdx.x; i < n; i += 4 * kCopyThreads) {
    const float4 x = from ? *reinterpret_cast<const float4*>(from + i) : float4{0.f, 0.f, 0.f, 0.f};
    __nv_bfloat162* y = reinterpret_cast<__nv_bfloat162*>(to + i);
    y[0] = __floats2bfloat162_rn(x.x, x.y);
    y[1] = __floats2bfloat162_rn(x.z, x.w);
  }
}

// A key/value store [B, capacity, kv_heads, D] as the bf16 copy the products read,
// [B, rows, kv_heads, D]: its entries [0, length), then zeros up to `rows` (the products
// take keys rounded up to 8; a zero row times a zero probability adds nothing, where
// the store's own rows past `length` may hold anything). A block per copied row.
__global__ void __launch_bounds__(kCopyThreads)
    key_rows_to_bf16_kernel(const float* x, int64_t length, int64_t capacity, int64_t rows, int width,
                            __nv_bfloat16* y) {
  const int64_t b = blockIdx.x / rows, r = blockIdx.x % rows;
  row_to_bf16(r < length ? x + (b * capacity + r) * width : nullptr, width, y + int64_t{blockIdx.x} * width);
}

// x [B, T, H, D] in bf16 as [B, H, T, D]: each (row, head)'s queries one matrix with rows
// D apart, so that a kv head's `group` query heads are one matrix of group x T rows (the
// key and value gradients' products run over all of them at once). A block per (b, t),
// its threads along the whole row four floats at a time (as row_to_bf16; four never
// straddle two heads, d being a multiple of 8).
__global__ void __launch_bounds__(kCopyThreads)
    queries_to_head_major_bf16_kernel(const float* x, int64_t t, int heads, int d, __nv_bfloat16* y) {
  const int64_t b = blockIdx.x / t, ti = blockIdx.x % t;
  const float* row = x + int64_t{blockIdx.x} * heads * d;
  const int width = heads * d;
  for (int e = 4 * threadIdx.x; e < width; e += 4 * kCopyThreads) {
    const int h = e / d, i = e % d;
    const float4 v = *reinterpret_cast<const float4*>(row + e);
    __nv_bfloat162* pair = reinterpret_cast<__nv_bfloat162*>(y + ((b * heads + h) * t + ti) * d + i);
    pair[0] = __floats2bfloat162_rn(v.x, v.y);
    pair[1] = __floats2bfloat162_rn(v.z, v.w);
  }
}

// One warp per score row (score_rows.h), kRowsPerBlock rows a block, over query block
// `block`'s rows; a warp past the last row returns whole, so the others' shuffles still
// see every lane.
template <int kPerLane, class P>
__global__ void masked_softmax_in_registers_kernel(GemmAttentionShape s, int64_t block, const int32_t* key_valid,
                                                   const float* scores, P* probabilities) {
  const int64_t j = blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / 32;
  if (j >= score_rows::block_score_rows(s, block)) return;
  score_rows::masked_softmax_row_in_registers<kPerLane>(DeviceThread{}, s, key_valid, scores, probabilities,
                                                        score_rows::block_score_row(s, block, j));
}

template <class P>
__global__ void masked_softmax_looped_kernel(GemmAttentionShape s, int64_t block, const int32_t* key_valid,
                                             const float* scores, P* probabilities) {
  const int64_t j = blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / 32;
  if (j >= score_rows::block_score_rows(s, block)) return;
  score_rows::masked_softmax_row_looped(DeviceThread{}, s, key_valid, scores, probabilities,
                                        score_rows::block_score_row(s, block, j));
}

template <int kPerLane, class P, class G>
__global__ void softmax_backward_in_registers_kernel(GemmAttentionShape s, int64_t block, float scale,
                                                     const P* probabilities, const float* dp, G* grads) {
  const int64_t j = blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / 32;
  if (j >= score_rows::block_score_rows(s, block)) return;
  score_rows::softmax_backward_row_in_registers<kPerLane>(DeviceThread{}, s, scale, probabilities, dp, grads,
                                                          score_rows::block_score_row(s, block, j));
}

template <class P, class G>
__global__ void softmax_backward_looped_kernel(GemmAttentionShape s, int64_t block, float scale,
                                               const P* probabilities, const float* dp, G* grads) {
  const int64_t j = blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / 32;
  if (j >= score_rows::block_score_rows(s, block)) return;
  score_rows::softmax_backward_row_looped(DeviceThread{}, s, scale, probabilities, dp, grads,
                                          score_rows::block_score_row(s, block, j));
}

unsigned row_blocks(const GemmAttentionShape& s, int64_t block) {
  return static_cast<unsigned>((score_rows::block_score_rows(s, block) + kRowsPerBlock - 1) / kRowsPerBlock);
}

// The keys query block `block`'s rows are read up to: what sizes its registers.
int64_t block_row_keys(const GemmAttentionShape& s, int64_t block) {
  return score_rows::block_keys(s, block * s.query_block);
}

// P = masked softmax of `scores` into `probabilities` (float: in place; bf16: rounded) at
// query block `block`'s rows, in registers where a row fits them.
template <class P>
void masked_softmax(const GemmAttentionShape& s, int64_t block, const int32_t* key_valid, const float* scores,
                    P* probabilities, cudaStream_t stream) {
  const int64_t keys = block_row_keys(s, block);
  if (score_rows::row_registers(keys) == 0) {
    masked_softmax_looped_kernel<<<row_blocks(s, block), kRowsPerBlock * 32, 0, stream>>>(s, block, key_valid, scores,
                                                                                           probabilities);
  } else {
    score_rows::with_row_registers(keys, [&](auto per_lane) {
      masked_softmax_in_registers_kernel<decltype(per_lane)::value>
          <<<row_blocks(s, block), kRowsPerBlock * 32, 0, stream>>>(s, block, key_valid, scores, probabilities);
    });
  }
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

// dS from P and dP into `grads` (float: in place of dP; bf16: rounded) at query block
// `block`'s rows.
template <class P, class G>
void softmax_backward(const GemmAttentionShape& s, int64_t block, float scale, const P* probabilities, const float* dp,
                      G* grads, cudaStream_t stream) {
  const int64_t keys = block_row_keys(s, block);
  if (score_rows::row_registers(keys) == 0) {
    softmax_backward_looped_kernel<<<row_blocks(s, block), kRowsPerBlock * 32, 0, stream>>>(s, block, scale,
                                                                                             probabilities, dp, grads);
  } else {
    score_rows::with_row_registers(keys, [&](auto per_lane) {
      softmax_backward_in_registers_kernel<decltype(per_lane)::value>
          <<<row_blocks(s, block), kRowsPerBlock * 32, 0, stream>>>(s, block, scale, probabilities, dp, grads);
    });
  }
  XCOMP_CUDA_CHECK(cudaGetLastError());
}

// Whether a head_dim keeps the per-head pointers cuBLAS's batched products get 16-byte
// aligned (from aligned storage): the bf16 copies' heads are head_dim x 2 bytes apart,
// the fp32 tensors' head_dim x 4.
bool per_head_pointers_aligned(int64_t head_dim, bool bf16_operands) {
  return head_dim * (bf16_operands ? 2 : 4) % 16 == 0;
}

int checked_int(int64_t v, const char* op) {
  CHECK(v <= std::numeric_limits<int>::max()) << op << ": dimension " << v << " exceeds cuBLAS's int range";
  return static_cast<int>(v);
}

}  // namespace

bool CudaOps::gemm_attention_applies(int64_t batch, int64_t heads, int64_t t, int64_t length, int64_t head_dim,
                                     bool bf16_operands, std::initializer_list<const Tensor*> tensors) const {
  const int64_t entries = batch * heads * t * score_row_stride(length);
  if (entries > std::numeric_limits<int>::max() || 2 * entries * int64_t{sizeof(float)} > kMaxWorkspaceBytes)
    return false;
  bool aligned = per_head_pointers_aligned(head_dim, bf16_operands);
  for (const Tensor* x : tensors)
    aligned = aligned && (x == nullptr || reinterpret_cast<uintptr_t>(x->raw()) % 16 == 0);
  if (!aligned) {
    LOG_FIRST_N(WARNING, 1) << "attention: head_dim " << head_dim << (bf16_operands ? " (bf16" : " (fp32")
                            << " operands) or a tensor's storage leaves cuBLAS's batched products per-head pointers "
                               "off 16-byte alignment; the tiled kernels run instead";
  }
  return aligned;
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
  // An error, not an abort, so that a run (or a test binary) asking for gemm_causal_bf16
  // where cuBLAS lacks these products says so and the process goes on to report it.
  if (status == CUBLAS_STATUS_NOT_SUPPORTED && ab_type == CUDA_R_16BF)
    throw_input_error("attention: cublasGemmBatchedEx offers no batched product of bf16 operands into fp32 here, "
                      "which gemm_causal_bf16 (cuda.attention or cuda.attention_backward) needs; choose gemm_causal");
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
  using namespace gemm_attention;
  const char* op = dout ? "attention_backward" : "attention";
  CHECK_GT(query_block, 0) << op << ": query block " << query_block;
  const GemmAttentionShape s = plan_shape(q.dim(0), q.dim(1), q.dim(2), q.dim(3), k.dim(1), k.dim(2), length,
                                          query_block, bf16_operands);
  CHECK(per_head_pointers_aligned(s.d, bf16_operands)) << op << ": head_dim " << s.d << " (gemm_attention_applies)";
  const int64_t blocks = query_blocks_of(s), count = s.batch * s.heads;
  const Shape score_shape{s.batch, s.heads, s.t, s.score_stride};

  // The operands: the fp32 tensors, or bf16 copies of the entries the products read (q
  // and dout head-major, k and v bf16_key_rows a batch row).
  Tensor q16, k16, v16, dout16;
  if (bf16_operands) {
    for (auto [from, to] : {std::pair{&q, &q16}, std::pair{dout, &dout16}}) {
      if (from == nullptr) continue;
      *to = empty({s.batch, s.heads, s.t, s.d}, DType::BF16);
      if (to->numel() == 0) continue;
      queries_to_head_major_bf16_kernel<<<static_cast<unsigned>(s.batch * s.t), kCopyThreads, 0, stream_>>>(
          static_cast<const float*>(from->raw()), s.t, checked_int(s.heads, op), checked_int(s.d, op),
          static_cast<__nv_bfloat16*>(to->raw()));
      XCOMP_CUDA_CHECK(cudaGetLastError());
    }
    const int64_t rows = bf16_key_rows(s);
    for (auto [from, to] : {std::pair{&k, &k16}, std::pair{&v, &v16}}) {
      *to = empty({s.batch, rows, s.kv_heads, s.d}, DType::BF16);
      if (to->numel() == 0) continue;
      key_rows_to_bf16_kernel<<<static_cast<unsigned>(s.batch * rows), kCopyThreads, 0, stream_>>>(
          static_cast<const float*>(from->raw()), s.length, s.capacity, rows, checked_int(s.kv_heads * s.d, op),
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
  base.bf16_copies = bf16_operands;
  const int operand_bytes = bf16_operands ? 2 : 4;
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

  std::shared_ptr<void> table_block = allocator_->allocate(blocks * kTables * count * sizeof(void*));
  const void** tables = static_cast<const void**>(table_block.get());
  fill_pointer_tables<<<static_cast<unsigned>((blocks * count + 255) / 256), 256, 0, stream_>>>(s, blocks, base,
                                                                                                   tables);
  XCOMP_CUDA_CHECK(cudaGetLastError());

  // The plan's steps on this stream: products through cublasGemmBatchedEx, the row
  // kernels over the score matrices.
  struct CudaSteps {
    CudaOps& ops;
    const GemmAttentionShape& s;
    const char* op;
    const void** tables;
    int64_t count;
    cudaDataType ab_type;
    const int32_t* valid;
    float* scores;      // S, then dP on the bf16 path
    float* grads;       // the fp32 path's dP then dS
    void* probabilities16;
    void* grads16;

    void product(const Product& p) {
      auto table = [&](Table which) { return tables + (p.block * kTables + which) * count + p.first; };
      ops.attention_gemm(p.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N, p.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                         checked_int(p.m, op), checked_int(p.n, op), checked_int(p.k, op), p.alpha, table(p.a),
                         checked_int(p.lda, op), table(p.b), checked_int(p.ldb, op), p.beta,
                         const_cast<void* const*>(table(p.c)), checked_int(p.ldc, op), checked_int(p.count, op),
                         ab_type);
    }
    void softmax(int64_t block) {
      if (probabilities16)
        masked_softmax(s, block, valid, scores, static_cast<score_rows::Bf16Bits*>(probabilities16), ops.stream_);
      else
        masked_softmax(s, block, valid, scores, scores, ops.stream_);
    }
    void softmax_backward(float scale, int64_t block) {
      if (probabilities16)
        cuda::softmax_backward(s, block, scale, static_cast<const score_rows::Bf16Bits*>(probabilities16), scores,
                               static_cast<score_rows::Bf16Bits*>(grads16), ops.stream_);
      else
        cuda::softmax_backward(s, block, scale, static_cast<const float*>(scores), grads, grads, ops.stream_);
    }
  };
  CudaSteps steps{*this,
                  s,
                  op,
                  tables,
                  count,
                  bf16_operands ? CUDA_R_16BF : CUDA_R_32F,
                  static_cast<const int32_t*>(key_valid.raw()),
                  static_cast<float*>(scores.raw()),
                  grads.defined() ? static_cast<float*>(grads.raw()) : nullptr,
                  bf16_operands ? probabilities16.raw() : nullptr,
                  grads16.defined() ? grads16.raw() : nullptr};
  run(s, dout != nullptr, bf16_operands, steps);
}

}  // namespace xcomp::cuda
