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

void DataParallel::sum_gradients(Ops& ops, Tensor gradient_buffer) {  // a view: reduced in place
  CHECK(gradient_buffer.dtype() == DType::F32 && gradient_buffer.ndim() == 1);
  const size_t count = static_cast<size_t>(gradient_buffer.numel());
  if (gradient_buffer.on_host()) {
    if (comm_.world_size() > 1) comm_.all_reduce(static_cast<float*>(gradient_buffer.raw()), count, ReduceOp::kSum);
  } else if (comm_.reduces_device_memory()) {
    comm_.all_reduce(static_cast<float*>(gradient_buffer.raw()), count, ReduceOp::kSum);
  } else if (comm_.world_size() > 1) {
    if (!staged_.defined() || staged_.numel() != gradient_buffer.numel()) staged_ = Tensor::empty(gradient_buffer.shape());
    ops.download_into(gradient_buffer, staged_);
    comm_.all_reduce(staged_.data<float>(), count, ReduceOp::kSum);
    ops.upload_into(staged_, gradient_buffer);
  }
}

std::function<void(int)> DataParallel::begin_gradient_sum(Ops& ops, Compressor& compressor) {
  CHECK(overlap_.ops == nullptr) << "begin_gradient_sum twice without finish_gradient_sum";
  Tensor buffer = compressor.gradient_buffer();  // a view, for its writable pointer
  overlap_ = {&ops, &compressor, static_cast<float*>(buffer.raw()), buffer.numel(), buffer.numel()};
  if (!overlaps_gradient_sum()) return nullptr;
  return [this](int layer) { layer_gradients_ready(layer); };
}

void DataParallel::layer_gradients_ready(int layer) {
  CHECK(overlap_.ops != nullptr) << "a layer reported outside begin_gradient_sum/finish_gradient_sum";
  const auto [begin, end] = overlap_.compressor->lora_gradient_range(layer);
  if (begin == end) return;
  // Layers come from the last, and the buffer holds them in order: each one ends where
  // the run already final begins.
  CHECK_EQ(end, overlap_.pending_from) << "layer " << layer << " reported out of order";
  overlap_.pending_from = begin;
  const int64_t pending = overlap_.started_from - overlap_.pending_from;
  if (pending >= static_cast<int64_t>(std::max<size_t>(comm_.bucket_elements(), 1))) {
    comm_.start_all_reduce(overlap_.buffer + overlap_.pending_from, static_cast<size_t>(pending), ReduceOp::kSum,
                           overlap_.ops->stream_handle());
    overlap_.started_from = overlap_.pending_from;
  }
}

void DataParallel::finish_gradient_sum() {
  CHECK(overlap_.ops != nullptr) << "finish_gradient_sum without begin_gradient_sum";
  if (!overlaps_gradient_sum()) {
    sum_gradients(*overlap_.ops, overlap_.compressor->gradient_buffer());
    overlap_ = OverlappedSum{};
    return;
  }
  // Everything below started_from: the tokens' gradients (final only now) and any layers
  // still pending.
  if (overlap_.started_from > 0)
    comm_.start_all_reduce(overlap_.buffer, static_cast<size_t>(overlap_.started_from), ReduceOp::kSum,
                           overlap_.ops->stream_handle());
  comm_.wait_for_reductions(overlap_.ops->stream_handle());
  overlap_ = OverlappedSum{};
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
