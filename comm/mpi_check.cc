#include "comm/mpi_check.h"

#include <glog/logging.h>

namespace xcomp {

void mpi_call_failed(int code, const char* call, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
  LOG(FATAL) << file << ":" << line << ": " << call << " failed: " << std::string(text, length) << " (code " << code
             << ")";
  __builtin_unreachable();
}

}  // namespace xcomp
