// The gradient sum overlapped with backward (DataParallel::begin_gradient_sum), over a
// communicator that stands in for NCCL: it reduces "device" memory, and each reduction
// it starts doubles its range at once (the sum over two ranks holding the same
// gradients). So the overlapped sum must double every gradient exactly once, after its
// last write: the result equals the plain sum after the step bit for bit (a range
// started before its layer's backward had finished, or reduced twice, or never, would
// differ), and the ranges tile the buffer, from its end down, in buckets.
#include <gtest/gtest.h>

#include <memory>
#include <utility>
#include <vector>

#include "io/model_loader.h"
#include "model/compressor.h"
#include "model/cpu/cpu_ops.h"
#include "model/llama.h"
#include "tests/random_batch.h"
#include "tests/test_support.h"
#include "trainer/data_parallel.h"

namespace xcomp {
namespace {

class DoublingCommunicator : public SingleProcessCommunicator {
 public:
  DoublingCommunicator(bool device_memory, size_t bucket) : device_memory_(device_memory), bucket_(bucket) {}
  int world_size() const override { return 2; }
  size_t bucket_elements() const override { return bucket_; }
  bool reduces_device_memory() const override { return device_memory_; }
  void all_reduce(float* data, size_t count, ReduceOp op) override {
    ASSERT_EQ(op, ReduceOp::kSum);
    ranges.emplace_back(data, count);
    for (size_t i = 0; i < count; ++i) data[i] *= 2;
  }
  void start_all_reduce(float* data, size_t count, ReduceOp op, void* after) override {
    EXPECT_EQ(after, nullptr);  // the CPU backend has no stream
    all_reduce(data, count, op);
  }
  void wait_for_reductions(void*) override { ++waits; }

  std::vector<std::pair<float*, size_t>> ranges;
  int waits = 0;

 private:
  bool device_memory_;
  size_t bucket_;
};

std::vector<float> contents(const Tensor& t) { return std::vector<float>(t.data<float>(), t.data<float>() + t.numel()); }

class OverlappedGradientSum : public ::testing::TestWithParam<CompressorMode> {};

TEST_P(OverlappedGradientSum, EqualsThePlainSumAfterTheStep) {
  const LoadedModel loaded = load_model(test::fixture("stories260K/stories260K.bin"),
                                        test::fixture("stories260K/tok512.model"));
  CpuOps ops;
  const LlamaModel model(loaded.config, load_weights(loaded), ops);
  CompressorSettings settings;
  settings.mode = GetParam();
  settings.num_tokens = 4;
  settings.lora.r = 4;
  const std::vector<CompressorBatch> micro = {
      test::random_regeneration_batch({23, 9}, loaded.config.vocab_size, 7),
      test::random_regeneration_batch({17, 30, 5}, loaded.config.vocab_size, 8)};
  StepOptions options;
  options.token_weight = 1.0f / 90;
  options.end_id = test::kEos;

  // The plain way, as with a host communicator (MPI): no hook, and one reduction of the
  // whole buffer after both micro-batches.
  Compressor plain(loaded.config, settings, 11);
  test::perturb_lora_b(plain);
  DoublingCommunicator host_comm(/*device_memory=*/false, 1500);
  DataParallel host_parallel(host_comm);
  ASSERT_FALSE(host_parallel.overlaps_gradient_sum());
  plain.zero_grad();
  compressor_step(model, plain, micro[0], options);
  StepOptions last = options;
  last.lora_gradients_ready = host_parallel.begin_gradient_sum(ops, plain);
  EXPECT_FALSE(last.lora_gradients_ready);
  compressor_step(model, plain, micro[1], last);
  EXPECT_TRUE(host_comm.ranges.empty());
  host_parallel.finish_gradient_sum();
  ASSERT_EQ(host_comm.ranges.size(), 1u);

  // Overlapped with the last micro-batch's backward.
  Compressor overlapped(loaded.config, settings, 11);
  test::perturb_lora_b(overlapped);
  DoublingCommunicator device_comm(/*device_memory=*/true, 1500);
  DataParallel parallel(device_comm);
  ASSERT_TRUE(parallel.overlaps_gradient_sum());
  overlapped.zero_grad();
  for (size_t i = 0; i < micro.size(); ++i) {
    StepOptions o = options;
    if (i + 1 == micro.size()) o.lora_gradients_ready = parallel.begin_gradient_sum(ops, overlapped);
    compressor_step(model, overlapped, micro[i], o);
  }
  EXPECT_GT(device_comm.ranges.size(), 1u) << "no reduction started during backward";
  parallel.finish_gradient_sum();
  EXPECT_EQ(device_comm.waits, 1);

  EXPECT_EQ(contents(overlapped.gradient_buffer()), contents(plain.gradient_buffer()));
  // The ranges tile the buffer from its end down; all but the last fill a bucket.
  const float* base = overlapped.gradient_buffer().data<float>();
  int64_t end = overlapped.gradient_buffer().numel();
  for (size_t r = 0; r < device_comm.ranges.size(); ++r) {
    const auto [data, count] = device_comm.ranges[r];
    EXPECT_EQ(data - base + static_cast<int64_t>(count), end) << "range " << r;
    if (r + 1 < device_comm.ranges.size()) {
      EXPECT_GE(count, 1500u) << "range " << r;
    }
    end = data - base;
  }
  EXPECT_EQ(end, 0);
}

INSTANTIATE_TEST_SUITE_P(Modes, OverlappedGradientSum,
                         ::testing::Values(CompressorMode::kKeyValue, CompressorMode::kEmbedding,
                                           CompressorMode::kNone),
                         [](const auto& info) {
                           return std::string(info.param == CompressorMode::kKeyValue    ? "kv"
                                              : info.param == CompressorMode::kEmbedding ? "embedding"
                                                                                         : "none");
                         });

}  // namespace
}  // namespace xcomp
