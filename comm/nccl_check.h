// XCOMP_NCCL_CHECK(call): every NCCL call goes through it, so a failure names the call,
// the file and the line, with NCCL's error string and its last error message (the detail,
// e.g. which peer or transport failed). Like MPI errors (comm/mpi_check.h) these are not
// user input: they abort through glog with the whole message. Built with CUDA only.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

namespace xcomp {

[[noreturn]] void nccl_call_failed(ncclResult_t result, const char* call, const char* file, int line);
[[noreturn]] void comm_cuda_call_failed(cudaError_t result, const char* call, const char* file, int line);

}  // namespace xcomp

// The CUDA runtime calls of comm/ (streams, events, the device): comm/ knows nothing of
// the model, so it does not borrow model/cuda's check macro.
#define XCOMP_COMM_CUDA_CHECK(call)                                                  \
  do {                                                                               \
    const cudaError_t xcomp_comm_cuda_result_ = (call);                              \
    if (xcomp_comm_cuda_result_ != cudaSuccess)                                      \
      ::xcomp::comm_cuda_call_failed(xcomp_comm_cuda_result_, #call, __FILE__, __LINE__); \
  } while (0)

#define XCOMP_NCCL_CHECK(call)                                                  \
  do {                                                                          \
    const ncclResult_t xcomp_nccl_result_ = (call);                             \
    if (xcomp_nccl_result_ != ncclSuccess)                                      \
      ::xcomp::nccl_call_failed(xcomp_nccl_result_, #call, __FILE__, __LINE__); \
  } while (0)
