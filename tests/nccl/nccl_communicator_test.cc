// The NCCL communicator on the ranks of this job, one GPU each. Its all-reduce of device
// buffers must give what the host communicator (MpiCommunicator under mpirun, a world of
// one without) gives for the same host data: the same bits with one or two ranks (the sum
// of two floats does not depend on the order, and both sides average by x *= 0.5f), within
// the rounding of a differently ordered sum with more. Sums and averages, counts below,
// at, above and several times the bucket size, and count 0; the asynchronous form ordered
// after a compute stream's work and before its reads; the host-side operations; and the
// average's scale kernel on its own (with one rank the average never needs it); and the
// training loop's gradient sum (DataParallel) over a device buffer, both ways, and
// overlapped with backward.
//
// Without a GPU for every rank of this node each communicator test is skipped, saying
// why (one GPU and `mpirun -np 2`, or no GPU at all).
#include "comm/nccl_communicator.h"

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "comm/mpi_communicator.h"
#include "comm/nccl_scale.h"
#include "comm/process_group.h"
#include "model/cuda/cuda_check.h"
#include "model/cuda/cuda_ops.h"
#include "io/model_loader.h"
#include "model/compressor.h"
#include "model/llama.h"
#include "tests/random_batch.h"
#include "tests/test_support.h"
#include "trainer/data_parallel.h"

namespace xcomp {
namespace {

// Not a divisor of any count below but 1000, 2000 and 3000: buckets end mid-buffer.
constexpr size_t kBucket = 1000;

// Why this rank cannot run the suite ("" when it can).
std::string why_no_gpu(const ProcessPlacement& placement) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    return std::string("no usable CUDA device (") +
           (status == cudaSuccess ? "none found" : cudaGetErrorString(status)) + "): NCCL needs a GPU per rank";
  }
  if (placement.local_size > count) {
    return std::to_string(placement.local_size) + " ranks on this node but " + std::to_string(count) +
           " GPU(s): NCCL needs one GPU per rank (run with mpirun -np " + std::to_string(count) + ")";
  }
  return "";
}

// Host data of this rank for one case: uniform in [-1, 1], different on every rank.
std::vector<float> rank_data(size_t count, int rank, uint32_t salt) {
  std::mt19937 gen(1000003u * static_cast<uint32_t>(rank + 1) + salt);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> data(count);
  for (float& x : data) x = dist(gen);
  return data;
}

// A device copy of host floats, freed at scope end.
class DeviceFloats {
 public:
  explicit DeviceFloats(size_t count) : count_(count) {
    if (count_ > 0) XCOMP_CUDA_CHECK(cudaMalloc(&data_, count_ * sizeof(float)));
  }
  explicit DeviceFloats(const std::vector<float>& host) : DeviceFloats(host.size()) {
    if (count_ > 0) XCOMP_CUDA_CHECK(cudaMemcpy(data_, host.data(), count_ * sizeof(float), cudaMemcpyHostToDevice));
  }
  ~DeviceFloats() {
    if (data_ != nullptr) XCOMP_CUDA_CHECK(cudaFree(data_));
  }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;

  float* get() { return data_; }
  std::vector<float> download() const {
    std::vector<float> host(count_);
    if (count_ > 0) XCOMP_CUDA_CHECK(cudaMemcpy(host.data(), data_, count_ * sizeof(float), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  size_t count_;
  float* data_ = nullptr;
};

// Page-locked host floats (so copies on a stream are truly asynchronous), freed at scope end.
class PinnedFloats {
 public:
  explicit PinnedFloats(size_t count) : count_(count) {
    XCOMP_CUDA_CHECK(cudaMallocHost(&data_, count_ * sizeof(float)));
  }
  ~PinnedFloats() { XCOMP_CUDA_CHECK(cudaFreeHost(data_)); }
  PinnedFloats(const PinnedFloats&) = delete;
  PinnedFloats& operator=(const PinnedFloats&) = delete;

  float* get() { return data_; }
  size_t bytes() const { return count_ * sizeof(float); }

 private:
  size_t count_;
  float* data_ = nullptr;
};

// The first differences between got and want, "" when they agree: bit for bit with one
// or two ranks, else within twice the rounding bound of a `world`-term sum of values in
// [-1, 1] (each side's sum is within (world - 1) * eps * world of the exact one).
std::string differences(const std::vector<float>& got, const std::vector<float>& want, int world, ReduceOp op,
                        double* max_abs_diff) {
  if (got.size() != want.size()) return "sizes differ: " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
  const double eps = std::numeric_limits<float>::epsilon();
  const double tolerance =
      world <= 2 ? 0.0 : 2.0 * (world - 1) * eps * world / (op == ReduceOp::kAverage ? world : 1);
  std::ostringstream out;
  int shown = 0;
  size_t wrong = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double diff = std::fabs(static_cast<double>(got[i]) - want[i]);
    *max_abs_diff = std::max(*max_abs_diff, diff);
    if (!(diff <= tolerance)) {  // also catches NaN
      ++wrong;
      if (shown++ < 5) out << " [" << i << "] " << got[i] << " vs " << want[i] << ";";
    }
  }
  if (wrong == 0) return "";
  return std::to_string(wrong) + " of " + std::to_string(want.size()) + " elements differ (tolerance " +
         std::to_string(tolerance) + "):" + out.str();
}

class NcclCommunicatorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    host_ = world_communicator();
    const ProcessPlacement placement = mpi_is_running() ? mpi_world_placement() : ProcessPlacement{};
    if (placement.rank == 0)
      std::printf("host communicator: %s, %d rank(s), %d on this node\n",
                  mpi_is_running() ? "MPI" : "none (no MPI: a world of one)", placement.world_size,
                  placement.local_size);
    skip_reason_ = why_no_gpu(placement);
    // Every rank skips or none does: the communicator's construction is collective.
    if (host_->any(!skip_reason_.empty()) && skip_reason_.empty()) skip_reason_ = "another rank has no GPU of its own";
    if (!skip_reason_.empty()) return;
    nccl_ = std::make_unique<NcclCommunicator>(world_communicator(), placement, kBucket);
    // On the suite, not on each test: the summary of tools/gpu_check.sh reads a test's
    // numbers as its errors.
    const int version = nccl_runtime_version();  // 22809 for 2.28.9
    const std::string version_text = std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) +
                                     "." + std::to_string(version % 100);
    RecordProperty("nccl_version", version_text);
    RecordProperty("world_size", std::to_string(nccl_->world_size()));
    if (nccl_->rank() == 0)
      std::printf("NCCL %s (loaded), %d rank(s), rank 0 on device %d, buckets of %zu floats\n", version_text.c_str(),
                  nccl_->world_size(), nccl_->device(), nccl_->bucket_elements());
  }
  static void TearDownTestSuite() {
    nccl_.reset();  // every rank, before MPI ends: ncclCommDestroy is collective within a node
    host_.reset();
  }
  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
  }

  static std::unique_ptr<Communicator> host_;  // the reference: MPI, or a world of one
  static std::unique_ptr<NcclCommunicator> nccl_;
  static std::string skip_reason_;
};

std::unique_ptr<Communicator> NcclCommunicatorTest::host_;
std::unique_ptr<NcclCommunicator> NcclCommunicatorTest::nccl_;
std::string NcclCommunicatorTest::skip_reason_;

TEST_F(NcclCommunicatorTest, MatchesTheHostCommunicator) {
  EXPECT_EQ(nccl_->rank(), host_->rank());
  EXPECT_EQ(nccl_->world_size(), host_->world_size());
  EXPECT_EQ(nccl_->bucket_elements(), kBucket);
  const int world = nccl_->world_size();
  double max_abs_diff = 0;
  uint32_t salt = 0;
  for (const ReduceOp op : {ReduceOp::kSum, ReduceOp::kAverage}) {
    for (const size_t count : {size_t{1}, size_t{999}, size_t{1000}, size_t{1001}, size_t{2500}, size_t{3000},
                               size_t{12345}}) {
      const char* op_name = op == ReduceOp::kSum ? "sum" : "average";
      SCOPED_TRACE(std::string(op_name) + " of " + std::to_string(count));
      const std::vector<float> data = rank_data(count, nccl_->rank(), ++salt);
      std::vector<float> want = data;
      host_->all_reduce(want.data(), want.size(), op);
      DeviceFloats device(data);
      nccl_->all_reduce(device.get(), count, op);
      const std::string wrong = differences(device.download(), want, world, op, &max_abs_diff);
      EXPECT_TRUE(wrong.empty()) << wrong;
    }
  }
  RecordProperty("max_abs_difference", std::to_string(max_abs_diff));
}

TEST_F(NcclCommunicatorTest, CountZeroDoesNothing) {
  nccl_->all_reduce(nullptr, 0, ReduceOp::kSum);
  nccl_->all_reduce_async(nullptr, 0, ReduceOp::kAverage, nullptr);
  const std::vector<float> data = rank_data(10, nccl_->rank(), 77);
  DeviceFloats device(data);
  nccl_->all_reduce(device.get(), 0, ReduceOp::kSum);
  nccl_->all_reduce_async(device.get(), 0, ReduceOp::kAverage, nullptr);
  nccl_->synchronize();
  EXPECT_EQ(device.download(), data);
}

// Writes queued on a (non-blocking) compute stream, then the asynchronous reductions
// ordered after them, then reads queued on the same stream after wait(): the reads see
// the reduced values. The compute stream first holds still for 400 ms (a host function
// that sleeps), so 100 ms after the calls return the communicator's stream must still be
// busy: reductions that did not wait for the compute stream would be done by then. (With
// one rank the values cannot show a missing wait, the sum being the identity; this can.)
TEST_F(NcclCommunicatorTest, AsyncReductionWaitsForTheComputeStream) {
  // 101 buckets each: the ordering is the host function's to show, not the copies'.
  const size_t count = 100017;
  const int world = nccl_->world_size();
  const std::vector<float> sum_data = rank_data(count, nccl_->rank(), 1001);
  const std::vector<float> average_data = rank_data(count, nccl_->rank(), 1002);
  std::vector<float> want_sum = sum_data, want_average = average_data;
  host_->all_reduce(want_sum.data(), count, ReduceOp::kSum);
  host_->all_reduce(want_average.data(), count, ReduceOp::kAverage);

  PinnedFloats in_sum(count), in_average(count), out_sum(count), out_average(count);
  std::copy(sum_data.begin(), sum_data.end(), in_sum.get());
  std::copy(average_data.begin(), average_data.end(), in_average.get());
  DeviceFloats sum(count), average(count);

  cudaStream_t compute = nullptr;
  XCOMP_CUDA_CHECK(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking));
  cudaEvent_t probe = nullptr;
  XCOMP_CUDA_CHECK(cudaEventCreateWithFlags(&probe, cudaEventDisableTiming));
  XCOMP_CUDA_CHECK(cudaLaunchHostFunc(
      compute, [](void*) { std::this_thread::sleep_for(std::chrono::milliseconds(400)); }, nullptr));
  XCOMP_CUDA_CHECK(cudaMemcpyAsync(sum.get(), in_sum.get(), in_sum.bytes(), cudaMemcpyHostToDevice, compute));
  XCOMP_CUDA_CHECK(
      cudaMemcpyAsync(average.get(), in_average.get(), in_average.bytes(), cudaMemcpyHostToDevice, compute));
  nccl_->all_reduce_async(sum.get(), count, ReduceOp::kSum, compute);
  nccl_->all_reduce_async(average.get(), count, ReduceOp::kAverage, compute);
  XCOMP_CUDA_CHECK(cudaEventRecord(probe, nccl_->stream()));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const cudaError_t pending = cudaEventQuery(probe);
  // "Not ready" is an answer, not an error: keep it from any later launch check.
  if (pending == cudaErrorNotReady && cudaPeekAtLastError() == cudaErrorNotReady) (void)cudaGetLastError();
  EXPECT_EQ(pending, cudaErrorNotReady)
      << "the reductions finished while the compute stream was still held up: they did not wait for it";

  nccl_->wait(compute);
  XCOMP_CUDA_CHECK(cudaMemcpyAsync(out_sum.get(), sum.get(), out_sum.bytes(), cudaMemcpyDeviceToHost, compute));
  XCOMP_CUDA_CHECK(
      cudaMemcpyAsync(out_average.get(), average.get(), out_average.bytes(), cudaMemcpyDeviceToHost, compute));
  XCOMP_CUDA_CHECK(cudaStreamSynchronize(compute));
  EXPECT_EQ(cudaEventQuery(probe), cudaSuccess);
  nccl_->synchronize();

  double max_abs_diff = 0;
  const std::string sum_wrong =
      differences(std::vector<float>(out_sum.get(), out_sum.get() + count), want_sum, world, ReduceOp::kSum,
                  &max_abs_diff);
  EXPECT_TRUE(sum_wrong.empty()) << "sum: " << sum_wrong;
  const std::string average_wrong =
      differences(std::vector<float>(out_average.get(), out_average.get() + count), want_average, world,
                  ReduceOp::kAverage, &max_abs_diff);
  EXPECT_TRUE(average_wrong.empty()) << "average: " << average_wrong;
  RecordProperty("max_abs_difference", std::to_string(max_abs_diff));
  XCOMP_CUDA_CHECK(cudaEventDestroy(probe));
  XCOMP_CUDA_CHECK(cudaStreamDestroy(compute));
}

// The blocking call on a buffer whose contents are still being copied in on another
// (non-blocking) stream: it waits for the device first.
TEST_F(NcclCommunicatorTest, BlockingReductionWaitsForOtherStreams) {
  const size_t count = 100003;
  const std::vector<float> data = rank_data(count, nccl_->rank(), 2001);
  std::vector<float> want = data;
  host_->all_reduce(want.data(), count, ReduceOp::kSum);
  PinnedFloats in(count);
  std::copy(data.begin(), data.end(), in.get());
  DeviceFloats device(count);
  cudaStream_t writer = nullptr;
  XCOMP_CUDA_CHECK(cudaStreamCreateWithFlags(&writer, cudaStreamNonBlocking));
  XCOMP_CUDA_CHECK(cudaLaunchHostFunc(
      writer, [](void*) { std::this_thread::sleep_for(std::chrono::milliseconds(200)); }, nullptr));
  XCOMP_CUDA_CHECK(cudaMemcpyAsync(device.get(), in.get(), in.bytes(), cudaMemcpyHostToDevice, writer));
  nccl_->all_reduce(device.get(), count, ReduceOp::kSum);
  double max_abs_diff = 0;
  const std::string wrong = differences(device.download(), want, nccl_->world_size(), ReduceOp::kSum, &max_abs_diff);
  EXPECT_TRUE(wrong.empty()) << wrong;
  XCOMP_CUDA_CHECK(cudaStreamDestroy(writer));
}

// The average's scale kernel, which only runs with two ranks or more: here on its own,
// against the host's x * factor (the same bits), on counts around its block size.
TEST(NcclScaleKernel, MatchesHostMultiplication) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) GTEST_SKIP() << "no usable CUDA device";
  ProcessPlacement placement = mpi_is_running() ? mpi_world_placement() : ProcessPlacement{};
  XCOMP_CUDA_CHECK(cudaSetDevice(placement.local_rank % devices));
  for (const float factor : {0.5f, 1.0f / 3.0f, 0.125f}) {
    for (const size_t count : {size_t{0}, size_t{1}, size_t{255}, size_t{256}, size_t{257}, size_t{100003}}) {
      SCOPED_TRACE(std::to_string(count) + " elements times " + std::to_string(factor));
      const std::vector<float> data = rank_data(count, 0, static_cast<uint32_t>(count));
      std::vector<float> want = data;
      for (float& x : want) x *= factor;
      DeviceFloats device(data);
      scale_on_device(device.get(), count, factor, nullptr);
      XCOMP_CUDA_CHECK(cudaDeviceSynchronize());
      EXPECT_EQ(device.download(), want);
    }
  }
}

TEST_F(NcclCommunicatorTest, HostOperationsGoThroughTheHostCommunicator) {
  const int world = nccl_->world_size();
  std::vector<double> values = {1.5, static_cast<double>(nccl_->rank())};
  nccl_->all_reduce_sum(values.data(), values.size());
  EXPECT_EQ(values[0], 1.5 * world);
  EXPECT_EQ(values[1], world * (world - 1) / 2.0);
  const int root = world - 1;
  int64_t value = nccl_->rank() == root ? 4242 : -1;
  nccl_->broadcast_bytes(&value, sizeof value, root);
  EXPECT_EQ(value, 4242);
  nccl_->barrier();
  EXPECT_TRUE(nccl_->all_equal(0xfeedfacecafebeefull));
  EXPECT_EQ(nccl_->all_equal(static_cast<uint64_t>(nccl_->rank())), world == 1);
  EXPECT_TRUE(nccl_->any(nccl_->rank() == root));
  EXPECT_FALSE(nccl_->any(false));
}

// --- under data parallelism: the training loop's gradient sum on the CUDA backend -------

// DataParallel::sum_gradients over a device gradient buffer (Compressor::gradient_buffer:
// each gradient a view of it; here a buffer with an offset view, as the later
// parameters' are): through NCCL in place, and staged through host memory with the host
// communicator (one download, MPI, one upload), both the same bits as the host sum.
TEST_F(NcclCommunicatorTest, DataParallelSumsADeviceGradientBuffer) {
  const std::unique_ptr<Ops> ops = make_cuda_ops(nccl_->device(), CudaWeightStorage::kF32);
  const int world = nccl_->world_size();
  const size_t count = 2 * kBucket + 345;  // three buckets, the last one partial
  const std::vector<float> data = rank_data(count + 7, nccl_->rank(), 77);
  Tensor host = Tensor::empty({static_cast<int64_t>(data.size())});
  std::copy(data.begin(), data.end(), host.data<float>());
  std::vector<float> want(data.begin() + 7, data.end());
  host_->all_reduce(want.data(), want.size(), ReduceOp::kSum);
  double max_abs_diff = 0;
  for (const bool through_nccl : {true, false}) {
    SCOPED_TRACE(through_nccl ? "NCCL on the device buffer" : "staged through the host communicator");
    const Tensor device = ops->upload(host);
    // The gradients after the first 7 values, as a later parameter's view would be.
    Tensor view = device.slice0(7, device.shape()[0]);
    DataParallel parallel(through_nccl ? static_cast<Communicator&>(*nccl_) : *host_);
    parallel.sum_gradients(*ops, view);
    const Tensor back = ops->download(device);
    for (int64_t i = 0; i < 7; ++i) ASSERT_EQ(back.data<float>()[i], data[i]) << "outside the view, element " << i;
    const std::vector<float> got(back.data<float>() + 7, back.data<float>() + back.numel());
    const std::string wrong = differences(got, want, world, ReduceOp::kSum, &max_abs_diff);
    EXPECT_TRUE(wrong.empty()) << wrong;
  }
  RecordProperty("max_abs_difference", std::to_string(max_abs_diff));
}

// The training loop's sum overlapped with the last micro-batch's backward
// (DataParallel::begin_gradient_sum, NCCL on the communicator's stream while backward
// goes on on the backend's): the same bits as the plain sum after the step, on a
// stories260K compressor step with fp32 weights on every rank (each rank its own batch).
// A bucket reduced before backward finished writing it would differ with two ranks; with
// one this checks that the ordering and the final wait leave the gradients intact.
TEST_F(NcclCommunicatorTest, DataParallelOverlapsTheSumWithBackward) {
  const LoadedModel loaded = load_model(test::fixture("stories260K/stories260K.bin"),
                                        test::fixture("stories260K/tok512.model"));
  const std::unique_ptr<Ops> ops = make_cuda_ops(nccl_->device(), CudaWeightStorage::kF32);
  const LlamaModel model(loaded.config, load_weights(loaded), *ops);
  const uint64_t seed = 7 + static_cast<uint64_t>(nccl_->rank());
  const std::vector<CompressorBatch> micro = {
      test::random_regeneration_batch({23, 9}, loaded.config.vocab_size, seed),
      test::random_regeneration_batch({17, 30, 5}, loaded.config.vocab_size, seed + 100)};
  StepOptions options;
  options.token_weight = 1.0f / 90;
  options.end_id = test::kEos;
  for (const CompressorMode mode : {CompressorMode::kKeyValue, CompressorMode::kEmbedding}) {
    SCOPED_TRACE(mode == CompressorMode::kKeyValue ? "kv" : "embedding");
    CompressorSettings settings;
    settings.mode = mode;
    settings.num_tokens = 4;
    settings.lora.r = 4;
    std::vector<float> sums[2];
    for (const bool overlap : {false, true}) {
      Compressor compressor(loaded.config, settings, 11);
      test::perturb_lora_b(compressor);
      compressor.place_on(*ops);
      compressor.zero_grad();
      DataParallel parallel(*nccl_);
      for (size_t i = 0; i < micro.size(); ++i) {
        StepOptions o = options;
        if (overlap && i + 1 == micro.size()) o.lora_gradients_ready = parallel.begin_gradient_sum(*ops, compressor);
        compressor_step(model, compressor, micro[i], o);
      }
      if (overlap)
        parallel.finish_gradient_sum();
      else
        parallel.sum_gradients(*ops, compressor.gradient_buffer());
      const Tensor host = ops->download(compressor.gradient_buffer());
      sums[overlap] = std::vector<float>(host.data<float>(), host.data<float>() + host.numel());
    }
    EXPECT_EQ(sums[1], sums[0]);
  }
}

}  // namespace
}  // namespace xcomp
