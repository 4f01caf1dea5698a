// Every CUDA runtime and cuBLAS call is checked; a failure names the call site.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <glog/logging.h>

#define XCOMP_CUDA_CHECK(call)                                                                  \
  do {                                                                                          \
    cudaError_t xcomp_cuda_status_ = (call);                                                    \
    CHECK(xcomp_cuda_status_ == cudaSuccess)                                                    \
        << #call << " failed at " << __FILE__ << ":" << __LINE__ << ": "                        \
        << cudaGetErrorString(xcomp_cuda_status_);                                              \
  } while (0)

#define XCOMP_CUBLAS_CHECK(call)                                                                \
  do {                                                                                          \
    cublasStatus_t xcomp_cublas_status_ = (call);                                               \
    CHECK(xcomp_cublas_status_ == CUBLAS_STATUS_SUCCESS)                                        \
        << #call << " failed at " << __FILE__ << ":" << __LINE__ << ": "                        \
        << cublasGetStatusString(xcomp_cublas_status_);                                         \
  } while (0)
