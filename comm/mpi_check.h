// XCOMP_MPI_CHECK(call): every MPI call goes through it, so a failure names the call,
// the file and the line, with MPI's own error text. MPI errors are not user input (the
// launcher set the job up); they abort through glog with the whole message.
#pragma once

#include <mpi.h>

namespace xcomp {

[[noreturn]] void mpi_call_failed(int code, const char* call, const char* file, int line);

}  // namespace xcomp

#define XCOMP_MPI_CHECK(call)                                                    \
  do {                                                                           \
    const int xcomp_mpi_code_ = (call);                                          \
    if (xcomp_mpi_code_ != MPI_SUCCESS)                                          \
      ::xcomp::mpi_call_failed(xcomp_mpi_code_, #call, __FILE__, __LINE__);      \
  } while (0)
