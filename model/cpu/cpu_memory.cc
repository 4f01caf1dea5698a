// The CPU backend computes in host memory, so moving a tensor to or from it is free:
// upload and download hand back the same storage.
#include <glog/logging.h>

#include <cstring>

#include "model/cpu/cpu_ops.h"

namespace xcomp {

Tensor CpuOps::upload(const Tensor& host) {
  CHECK(host.on_host()) << "upload of a " << device_name(host.device()) << " tensor to the CPU backend";
  return host;
}

Tensor CpuOps::download(const Tensor& t) {
  CHECK(t.on_host()) << "the CPU backend holds no " << device_name(t.device()) << " tensors";
  return t;
}

void CpuOps::download_into(const Tensor& t, Tensor& host) {
  CHECK(t.on_host() && host.on_host());
  CHECK(t.shape() == host.shape() && t.dtype() == host.dtype())
      << shape_str(t.shape()) << " into " << shape_str(host.shape());
  if (t.raw() != host.raw() && t.nbytes() > 0) std::memcpy(host.raw(), t.raw(), t.nbytes());
}

void CpuOps::upload_into(const Tensor& host, Tensor& t) { download_into(host, t); }

}  // namespace xcomp
