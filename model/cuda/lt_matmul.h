// cuBLASLt for the CUDA backend's bf16 and TF32 matrix products (XCOMP_CUDA_GEMM=lt or
// lt_tuned; the default, cublas, calls cublasGemmEx). Products are 58% of the LLaMA-3-8B
// step as last profiled, at about 600 TFLOP/s against the card's 989; cublasGemmEx picks
// its kernel with its own default workspace, while cuBLASLt takes a workspace we give it
// (32 MiB, NVIDIA's recommendation for Hopper, as PyTorch gives its cuBLASLt calls) and
// lets us choose among the heuristic's candidates:
//  - lt: the heuristic's first candidate for each shape (the same one every run, so a
//    run is reproducible bit for bit, as with cublas);
//  - lt_tuned: at a shape's first product, up to kTunedCandidates candidates are timed
//    on a scratch output and the fastest kept. Runs may then differ in the last bits
//    (a close timing can pick another kernel, with another summation order).
// A shape is the whole call (transposes, sizes, leading dimensions, types, whether beta
// is 0) and the alignment of its three pointers, which the heuristic is told, so a view
// at an odd offset gets a kernel that can read it. A call no candidate takes returns
// CUBLAS_STATUS_NOT_SUPPORTED and the caller runs cublasGemmEx.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace xcomp::cuda {

class DeviceAllocator;

enum class GemmPath { kCublas, kLt, kLtTuned };
// cuda.gemm where the run's config sets it, else XCOMP_CUDA_GEMM: cublas (also neither
// set), lt or lt_tuned; anything else is an input error naming where it came from.
GemmPath gemm_path_requested(const std::string& configured = "");
const char* gemm_path_name(GemmPath path);

// One column-major product D = op(A) op(B) + beta C (cublasGemmEx's arguments, alpha 1,
// and D = C unless d is set: then D is d, laid out as C): op(A) is m x k, op(B) k x n,
// C m x n.
struct MatmulCall {
  cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
  int m = 0, n = 0, k = 0;
  const void* a = nullptr;
  int lda = 0;
  const void* b = nullptr;
  int ldb = 0;
  void* c = nullptr;
  int ldc = 0;
  void* d = nullptr;
  cudaDataType ab_type = CUDA_R_16BF, c_type = CUDA_R_32F;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  float beta = 0.f;
};

class LtMatmul {
 public:
  static constexpr size_t kWorkspaceBytes = size_t{32} << 20;
  static constexpr int kTunedCandidates = 8;

  // path is kLt or kLtTuned; the workspace comes from `allocator` now and stays.
  LtMatmul(GemmPath path, const std::shared_ptr<DeviceAllocator>& allocator, cudaStream_t stream);
  ~LtMatmul();
  LtMatmul(const LtMatmul&) = delete;
  LtMatmul& operator=(const LtMatmul&) = delete;

  // Queues the product on the stream.
  cublasStatus_t run(const MatmulCall& call);

 private:
  using Key = std::tuple<int, int, int, int, int, int, int, int, int, int, int, bool, int, int, int, int>;
  struct Plan;
  static Key key_of(const MatmulCall& call);
  // The shape's descriptors and algorithm (null: no candidate takes it).
  Plan* plan_for(const MatmulCall& call);
  // Times each candidate on `call` with its output redirected to scratch memory; the
  // index of the fastest that ran (-1: none did).
  int fastest(const Plan& plan, const MatmulCall& call, const std::vector<int>& candidates);
  cublasStatus_t launch(const Plan& plan, int candidate, const MatmulCall& call, void* d) const;

  GemmPath path_;
  std::shared_ptr<DeviceAllocator> allocator_;
  cudaStream_t stream_;
  cublasLtHandle_t handle_ = nullptr;
  std::shared_ptr<void> workspace_;
  std::map<Key, std::unique_ptr<Plan>> plans_;
};

}  // namespace xcomp::cuda
