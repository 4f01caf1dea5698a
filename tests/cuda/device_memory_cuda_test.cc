// The CUDA backend's device memory: the caching allocator's and the arena's
// (XCOMP_CUDA_ARENA) accounting, tensors living in the arena, and a bad setting named.
// Needs a GPU (ctest label "cuda").
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "model/cuda/cuda_ops.h"
#include "model/input_error.h"

namespace xcomp {
namespace {

constexpr int64_t kMiB = 1 << 20;

std::unique_ptr<Ops> backend_with_arena(const char* setting) {
  EXPECT_EQ(setenv("XCOMP_CUDA_ARENA", setting, 1), 0);
  std::unique_ptr<Ops> ops;
  try {
    ops = make_cuda_ops(0, CudaWeightStorage::kF32);
  } catch (...) {
    unsetenv("XCOMP_CUDA_ARENA");
    throw;
  }
  EXPECT_EQ(unsetenv("XCOMP_CUDA_ARENA"), 0);
  return ops;
}

TEST(CudaDeviceMemory, TheArenaHoldsItsSizeAndCountsWhatTheTensorsNeeded) {
  std::unique_ptr<Ops> ops = backend_with_arena("0.5");  // GiB
  EXPECT_EQ(ops->device_memory_reserved(), 512 * kMiB);
  {
    std::vector<Tensor> held;
    for (int i = 0; i < 3; ++i) held.push_back(ops->zeros({25 * kMiB}));  // 100 MiB each
    held.erase(held.begin() + 1);                                         // a hole in the middle
    held.push_back(ops->zeros({10 * kMiB}));                              // fits in it
    Tensor host = Tensor::empty({4});
    for (int i = 0; i < 4; ++i) host.data<float>()[i] = 1.5f * i;
    const Tensor back = ops->download(ops->upload(host));
    for (int i = 0; i < 4; ++i) EXPECT_EQ(back.data<float>()[i], 1.5f * i);
  }
  const int64_t needed = ops->device_memory_needed_at_peak();
  EXPECT_GE(needed, 300 * kMiB);
  EXPECT_LT(needed, 301 * kMiB);  // the 40 MiB went into the hole, not past the end
  EXPECT_EQ(ops->device_memory_reserved(), 512 * kMiB);
}

TEST(CudaDeviceMemory, TheCachingAllocatorCountsItsLiveBlocksAtPeak) {
  std::unique_ptr<Ops> ops = make_cuda_ops(0, CudaWeightStorage::kF32);
  { const Tensor a = ops->zeros({16 * kMiB}), b = ops->zeros({16 * kMiB}); }  // 64 MiB each
  { const Tensor c = ops->zeros({16 * kMiB}); }
  EXPECT_GE(ops->device_memory_needed_at_peak(), 128 * kMiB);
  EXPECT_LT(ops->device_memory_needed_at_peak(), 129 * kMiB);  // c reused a's block
  EXPECT_GE(ops->device_memory_reserved(), 128 * kMiB);
}

TEST(CudaDeviceMemory, AnArenaTooSmallForATensorFailsNamingTheSetting) {
  // The child re-runs the test from the start: a forked one cannot use the CUDA context.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        std::unique_ptr<Ops> ops = backend_with_arena("0.01");
        (void)ops->zeros({64 * kMiB});
      },
      "XCOMP_CUDA_ARENA");
}

TEST(CudaDeviceMemory, ABadArenaSettingIsAnInputErrorNamingIt) {
  try {
    backend_with_arena("lots");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("XCOMP_CUDA_ARENA=lots"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace xcomp
