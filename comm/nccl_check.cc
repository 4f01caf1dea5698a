#include "comm/nccl_check.h"

#include <glog/logging.h>

namespace xcomp {

void nccl_call_failed(ncclResult_t result, const char* call, const char* file, int line) {
  const char* detail = ncclGetLastError(nullptr);
  LOG(FATAL) << file << ":" << line << ": " << call << " failed: " << ncclGetErrorString(result) << " (code "
             << static_cast<int>(result) << ")" << (detail && *detail ? ": " : "") << (detail ? detail : "");
  __builtin_unreachable();
}

void comm_cuda_call_failed(cudaError_t result, const char* call, const char* file, int line) {
  LOG(FATAL) << file << ":" << line << ": " << call << " failed: " << cudaGetErrorString(result);
  __builtin_unreachable();
}

}  // namespace xcomp
