#include "model/cuda/lt_matmul.h"

#include <glog/logging.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>

#include "model/cuda/backend_setting.h"
#include "model/cuda/cuda_check.h"
#include "model/cuda/device_allocator.h"
#include "model/input_error.h"

namespace xcomp::cuda {

GemmPath gemm_path_requested(const std::string& configured) {
  const BackendSetting setting = backend_setting(configured, "cuda.gemm", "XCOMP_CUDA_GEMM");
  if (setting.value.empty() || setting.value == "cublas") return GemmPath::kCublas;
  if (setting.value == "lt") return GemmPath::kLt;
  if (setting.value == "lt_tuned") return GemmPath::kLtTuned;
  throw_input_error(setting.named, ": expected cublas, lt or lt_tuned");
}

const char* gemm_path_name(GemmPath path) {
  switch (path) {
    case GemmPath::kCublas: return "cublas";
    case GemmPath::kLt: return "lt";
    case GemmPath::kLtTuned: return "lt_tuned";
  }
  return "?";
}

namespace {

// The largest power of two up to 256 that divides the address: what the heuristic may
// assume (its default assumption is 256).
int alignment_of(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  if (address == 0) return 256;
  return static_cast<int>(std::min<uintptr_t>(256, address & (~address + 1)));
}

size_t element_bytes(cudaDataType type) {
  switch (type) {
    case CUDA_R_16BF: return 2;
    case CUDA_R_32F: return 4;
    default: LOG(FATAL) << "LtMatmul: unexpected data type " << static_cast<int>(type);
  }
  return 0;
}

}  // namespace

struct LtMatmul::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  std::vector<cublasLtMatmulHeuristicResult_t> candidates;
  int chosen = -1;

  ~Plan() {
    if (c != nullptr) XCOMP_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(c));
    if (b != nullptr) XCOMP_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(b));
    if (a != nullptr) XCOMP_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(a));
    if (desc != nullptr) XCOMP_CUBLAS_CHECK(cublasLtMatmulDescDestroy(desc));
  }
};

LtMatmul::LtMatmul(GemmPath path, const std::shared_ptr<DeviceAllocator>& allocator, cudaStream_t stream)
    : path_(path), allocator_(allocator), stream_(stream) {
  CHECK(path == GemmPath::kLt || path == GemmPath::kLtTuned) << "LtMatmul: path " << gemm_path_name(path);
  XCOMP_CUBLAS_CHECK(cublasLtCreate(&handle_));
  workspace_ = allocator_->allocate(kWorkspaceBytes);
}

LtMatmul::~LtMatmul() {
  plans_.clear();  // their descriptors first
  XCOMP_CUBLAS_CHECK(cublasLtDestroy(handle_));
}

LtMatmul::Key LtMatmul::key_of(const MatmulCall& call) {
  return Key{static_cast<int>(call.ta), static_cast<int>(call.tb), call.m, call.n, call.k, call.lda, call.ldb,
             call.ldc, static_cast<int>(call.ab_type), static_cast<int>(call.c_type), static_cast<int>(call.compute),
             call.beta != 0.f, alignment_of(call.a), alignment_of(call.b), alignment_of(call.c),
             alignment_of(call.d ? call.d : call.c)};
}

LtMatmul::Plan* LtMatmul::plan_for(const MatmulCall& call) {
  const Key key = key_of(call);
  auto found = plans_.find(key);
  if (found != plans_.end()) return found->second->chosen < 0 ? nullptr : found->second.get();

  auto plan = std::make_unique<Plan>();
  XCOMP_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, call.compute, CUDA_R_32F));
  XCOMP_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &call.ta, sizeof call.ta));
  XCOMP_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &call.tb, sizeof call.tb));
  // Stored shapes (column-major rows x columns) before the transposes.
  const bool a_plain = call.ta == CUBLAS_OP_N, b_plain = call.tb == CUBLAS_OP_N;
  XCOMP_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->a, call.ab_type, a_plain ? call.m : call.k,
                                                a_plain ? call.k : call.m, call.lda));
  XCOMP_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->b, call.ab_type, b_plain ? call.k : call.n,
                                                b_plain ? call.n : call.k, call.ldb));
  XCOMP_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->c, call.c_type, call.m, call.n, call.ldc));

  cublasLtMatmulPreference_t preference = nullptr;
  XCOMP_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
  const uint64_t workspace = kWorkspaceBytes;
  XCOMP_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                          &workspace, sizeof workspace));
  const uint32_t align_a = alignment_of(call.a), align_b = alignment_of(call.b), align_c = alignment_of(call.c);
  const uint32_t align_d = alignment_of(call.d ? call.d : call.c);
  XCOMP_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                          &align_a, sizeof align_a));
  XCOMP_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                          &align_b, sizeof align_b));
  XCOMP_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                          &align_c, sizeof align_c));
  XCOMP_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                          &align_d, sizeof align_d));
  const int requested = path_ == GemmPath::kLtTuned ? kTunedCandidates : 1;
  plan->candidates.resize(requested);
  int returned = 0;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(handle_, plan->desc, plan->a, plan->b, plan->c, plan->c, preference, requested,
                                     plan->candidates.data(), &returned);
  XCOMP_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(preference));
  if (status != CUBLAS_STATUS_NOT_SUPPORTED) XCOMP_CUBLAS_CHECK(status);
  std::vector<int> usable;
  for (int i = 0; status == CUBLAS_STATUS_SUCCESS && i < returned; ++i)
    if (plan->candidates[i].state == CUBLAS_STATUS_SUCCESS) usable.push_back(i);
  if (!usable.empty()) plan->chosen = usable.size() == 1 ? usable.front() : fastest(*plan, call, usable);
  if (plan->chosen < 0) {
    LOG_FIRST_N(WARNING, 4) << "cuBLASLt has no algorithm for a " << call.m << " x " << call.n << " x " << call.k
                            << " product (alignments of A, B, C, D: " << align_a << ", " << align_b << ", "
                            << align_c << ", " << align_d << " bytes); cublasGemmEx runs it";
  }
  Plan* result = plan->chosen < 0 ? nullptr : plan.get();
  plans_.emplace(key, std::move(plan));
  return result;
}

cublasStatus_t LtMatmul::launch(const Plan& plan, int candidate, const MatmulCall& call, void* d) const {
  const float alpha = 1.f;
  return cublasLtMatmul(handle_, plan.desc, &alpha, call.a, plan.a, call.b, plan.b, &call.beta, call.c, plan.c, d,
                        plan.c, &plan.candidates[candidate].algo, workspace_.get(), kWorkspaceBytes, stream_);
}

int LtMatmul::fastest(const Plan& plan, const MatmulCall& call, const std::vector<int>& candidates) {
  // The scratch output keeps the caller's C as it is (beta != 0 reads it, and a candidate
  // run must not add into it).
  const std::shared_ptr<void> scratch =
      allocator_->allocate(static_cast<size_t>(call.ldc) * static_cast<size_t>(call.n) * element_bytes(call.c_type));
  cudaEvent_t start = nullptr, stop = nullptr;
  XCOMP_CUDA_CHECK(cudaEventCreate(&start));
  XCOMP_CUDA_CHECK(cudaEventCreate(&stop));
  constexpr int kRepeats = 3;
  int best = -1;
  float best_ms = std::numeric_limits<float>::infinity();
  for (const int candidate : candidates) {
    if (launch(plan, candidate, call, scratch.get()) != CUBLAS_STATUS_SUCCESS) continue;  // warm-up; skip refusals
    XCOMP_CUDA_CHECK(cudaEventRecord(start, stream_));
    for (int r = 0; r < kRepeats; ++r) XCOMP_CUBLAS_CHECK(launch(plan, candidate, call, scratch.get()));
    XCOMP_CUDA_CHECK(cudaEventRecord(stop, stream_));
    XCOMP_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    XCOMP_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (ms < best_ms) best_ms = ms, best = candidate;
  }
  XCOMP_CUDA_CHECK(cudaEventDestroy(stop));
  XCOMP_CUDA_CHECK(cudaEventDestroy(start));
  // The scratch block goes back to the allocator here, after the synchronisations above:
  // no queued product still writes it.
  return best;
}

cublasStatus_t LtMatmul::run(const MatmulCall& call) {
  const Plan* plan = plan_for(call);
  if (plan == nullptr) return CUBLAS_STATUS_NOT_SUPPORTED;
  return launch(*plan, plan->chosen, call, call.d ? call.d : call.c);
}

}  // namespace xcomp::cuda
