// Every HDF5 call is checked: a negative return becomes an error naming the call, the
// file being read or written and the source line, with HDF5's own innermost reason
// ("file signature not found", "truncated file: ..."). A file from a user gets an
// InputError; an invariant of our own code (a handle we just created) a glog CHECK.
#pragma once

#include <glog/logging.h>
#include <hdf5.h>

#include <string>

namespace xcomp {

// Turns off HDF5's automatic printing of error stacks for the calling thread (the
// setting is per thread in thread-safe builds), so the only report is ours. Cheap to
// call repeatedly; every entry point into the shard code calls it.
void quiet_hdf5_errors();

// HDF5's description of the most recent error on this thread, innermost reason first.
std::string hdf5_error_description();

// Throws InputError "<path>: <call> failed (<where>): <reason>".
[[noreturn]] void throw_hdf5_input_error(const std::string& path, const char* call, const char* where);

}  // namespace xcomp

#define XCOMP_H5_STRINGIFY_DETAIL(x) #x
#define XCOMP_H5_STRINGIFY(x) XCOMP_H5_STRINGIFY_DETAIL(x)
#define XCOMP_H5_WHERE __FILE__ ":" XCOMP_H5_STRINGIFY(__LINE__)

// For calls on a user's file: evaluates to the call's (non-negative) result, or throws
// InputError naming `path`.
#define XCOMP_H5_INPUT(call, path)                                                       \
  ([&]() {                                                                               \
    auto xcomp_h5_result = (call);                                                       \
    if (xcomp_h5_result < 0) ::xcomp::throw_hdf5_input_error((path), #call, XCOMP_H5_WHERE); \
    return xcomp_h5_result;                                                              \
  }())

// For calls that can only fail through a bug of ours (creating a property list, a
// datatype): CHECK-fails with the call and HDF5's reason.
#define XCOMP_H5_CHECK(call)                                                                    \
  ([&]() {                                                                                      \
    auto xcomp_h5_result = (call);                                                              \
    CHECK_GE(xcomp_h5_result, 0) << #call << " failed: " << ::xcomp::hdf5_error_description(); \
    return xcomp_h5_result;                                                                     \
  }())
