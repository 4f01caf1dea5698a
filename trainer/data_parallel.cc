#include "trainer/data_parallel.h"

#include <glog/logging.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace xcomp {

void DataParallel::broadcast_from_main(const std::vector<Tensor>& tensors) {
  if (comm_.world_size() == 1) return;
  for (Tensor t : tensors) {  // a view: the broadcast lands in the shared storage
    CHECK(t.on_host());
    comm_.broadcast_bytes(t.raw(), t.nbytes(), 0);
  }
}

void DataParallel::sum_gradients(Ops& ops, const std::vector<Tensor>& gradients) {
  if (comm_.world_size() == 1) return;
  size_t total = 0;
  for (const Tensor& g : gradients) total += static_cast<size_t>(g.numel());
  packed_.resize(total);
  size_t at = 0;
  for (const Tensor& g : gradients) {
    CHECK(g.dtype() == DType::F32);
    const Tensor host = g.on_host() ? g : ops.download(g);
    std::copy(host.data<float>(), host.data<float>() + host.numel(), packed_.data() + at);
    at += static_cast<size_t>(g.numel());
  }
  comm_.all_reduce(packed_.data(), packed_.size(), ReduceOp::kSum);
  at = 0;
  for (Tensor g : gradients) {
    Tensor host = g.on_host() ? g : Tensor::empty(g.shape());
    std::copy(packed_.data() + at, packed_.data() + at + g.numel(), host.data<float>());
    if (!g.on_host()) ops.upload_into(host, g);
    at += static_cast<size_t>(g.numel());
  }
}

void DataParallel::check_in_sync(int64_t step, const std::vector<Tensor>& parameters) {
  if (comm_.world_size() == 1) return;
  if (!comm_.all_equal(tensors_checksum(parameters)))
    throw std::runtime_error("after step " + std::to_string(step) +
                             " the trainable parameters differ between ranks (checksum all-reduce); the ranks "
                             "drifted apart, so the run stops rather than train on inconsistent replicas");
}

uint64_t tensors_checksum(const std::vector<Tensor>& tensors) {
  uint64_t hash = 1469598103934665603ull;
  for (const Tensor& t : tensors) {
    CHECK(t.on_host());
    const auto* bytes = static_cast<const unsigned char*>(t.raw());
    const size_t n = t.nbytes();
    for (size_t i = 0; i < n; ++i) hash = (hash ^ bytes[i]) * 1099511628211ull;
  }
  return hash;
}

}  // namespace xcomp
