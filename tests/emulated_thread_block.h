// A CPU emulation of CUDA thread blocks, for kernels written over an executor
// (model/cuda/flash_attention_kernels.h), so that their indexing, masking and
// synchronisation run in the unit suite on machines without a GPU:
//  - every thread of a block is a std::thread (made once per grid); blocks run one after
//    another;
//  - sync() and sync_warp() are barriers; one that waits a minute aborts, naming itself
//    (a barrier some thread never reaches would hang on a GPU, or worse); shuffle_xor
//    exchanges through a per-warp buffer between two warp barriers (so every lane must
//    call it, as __shfl_xor_sync with a full mask requires);
//  - shared memory starts as all-ones bytes (NaN as float and as bf16), so a read of a
//    value no thread wrote shows in the result;
//  - a fragment (16x16x8 for float operands, 16x16x16 for bf16 ones) is held by lane 0 of
//    its warp, whose load, fill, mma and store do the work (the other lanes' calls do
//    nothing): a lane reading a tile another lane's store wrote without sync_warp()
//    between races with it, as on the GPU;
//  - float operands are exact, or with `tf32` rounded to TF32 at the fragment load
//    (10-bit mantissa, to nearest, ties away from zero, as __float_to_tf32); bf16
//    operands are rounded (to nearest even, as __float2bfloat16_rn) when the kernel
//    converts them; products accumulate in fp32;
//  - fragment loads and stores must address shared memory as wmma requires (32-byte
//    aligned, a row stride that is a multiple of 16 bytes) and stay inside it: else the
//    emulation aborts, naming the offset (on a GPU: a fault, or silently wrong data).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstring>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "model/half.h"
#include "tests/tf32_rounding.h"

namespace xcomp::test {

class EmulatedBarrier {
 public:
  explicit EmulatedBarrier(int parties) : parties_(parties) {}

  void wait(const char* what) {
    std::unique_lock<std::mutex> lock(mutex_);
    const uint64_t generation = generation_;
    if (++arrived_ == parties_) {
      arrived_ = 0;
      ++generation_;
      changed_.notify_all();
      return;
    }
    if (!changed_.wait_for(lock, std::chrono::seconds(60), [&] { return generation_ != generation; })) {
      std::fprintf(stderr, "emulated thread block: %s waited a minute for threads that never came\n", what);
      std::abort();
    }
  }

 private:
  const int parties_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
  std::mutex mutex_;
  std::condition_variable changed_;
};

// A bf16 operand in emulated shared memory: its bits.
struct EmulatedBf16 {
  uint16_t bits;
};

struct EmulatedBlock {
  int64_t x = 0, y = 0, z = 0;
  bool tf32 = false;
  const unsigned char* shared = nullptr;  // the block's shared memory, `shared_bytes` long
  size_t shared_bytes = 0;
  std::unique_ptr<EmulatedBarrier> block_barrier;
  std::vector<std::unique_ptr<EmulatedBarrier>> warp_barriers;
  std::vector<double> exchange;  // a slot per thread, for shuffle_xor (float values exactly)
};

// One thread of an emulated block: the executor the kernel bodies take, with float
// (exact or TF32) or bf16 (EmulatedBf16) operands.
template <class OperandType> class EmulatedExecutor {
 public:
  using Operand = OperandType;
  static constexpr int kStep = sizeof(Operand) == 4 ? 8 : 16;  // a fragment's depth
  struct MatrixA {  // [16][kStep]
    float x[16 * kStep];
  };
  struct MatrixBRowMajor {  // [kStep][16]
    float x[kStep * 16];
  };
  struct MatrixBColMajor {  // [kStep][16], read from column-major memory
    float x[kStep * 16];
  };
  struct Accumulator {  // [16][16]
    float x[16 * 16];
  };

  EmulatedExecutor(EmulatedBlock* block, int thread) : block_(block), thread_(thread) {}

  int thread() const { return thread_; }
  int lane() const { return thread_ % 32; }
  int warp() const { return thread_ / 32; }
  int64_t block_x() const { return block_->x; }
  int64_t block_y() const { return block_->y; }
  int64_t block_z() const { return block_->z; }
  void sync() const { block_->block_barrier->wait("sync"); }
  void sync_warp() const { block_->warp_barriers[warp()]->wait("sync_warp"); }
  // float or double, as __shfl_xor_sync takes them.
  template <class T> T shuffle_xor(T value, int lane_mask) const {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "shuffle_xor takes float or double");
    block_->exchange[thread_] = value;
    block_->warp_barriers[warp()]->wait("shuffle_xor");
    const T other = static_cast<T>(block_->exchange[warp() * 32 + (lane() ^ lane_mask)]);
    block_->warp_barriers[warp()]->wait("shuffle_xor");
    return other;
  }

  Operand to_operand(float x) const {
    if constexpr (sizeof(Operand) == 4) {
      return x;
    } else {
      return Operand{f32_to_bf16(x)};
    }
  }

  void load(MatrixA& f, const Operand* p, int ld) const {
    if (lane() != 0) return;
    check_fragment(p, ld, 16, kStep, "load (matrix_a)");
    for (int r = 0; r < 16; ++r)
      for (int c = 0; c < kStep; ++c) f.x[r * kStep + c] = value_of(p[r * ld + c]);
  }
  void load(MatrixBRowMajor& f, const Operand* p, int ld) const {
    if (lane() != 0) return;
    check_fragment(p, ld, kStep, 16, "load (matrix_b, row-major)");
    for (int k = 0; k < kStep; ++k)
      for (int n = 0; n < 16; ++n) f.x[k * 16 + n] = value_of(p[k * ld + n]);
  }
  void load(MatrixBColMajor& f, const Operand* p, int ld) const {
    if (lane() != 0) return;
    check_fragment(p, ld, 16, kStep, "load (matrix_b, column-major)");
    for (int k = 0; k < kStep; ++k)
      for (int n = 0; n < 16; ++n) f.x[k * 16 + n] = value_of(p[n * ld + k]);
  }
  void fill(Accumulator& f, float value) const {
    if (lane() != 0) return;
    for (float& x : f.x) x = value;
  }
  template <class MatrixB> void mma(Accumulator& acc, const MatrixA& a, const MatrixB& b) const {
    if (lane() != 0) return;
    for (int m = 0; m < 16; ++m)
      for (int n = 0; n < 16; ++n) {
        float sum = acc.x[m * 16 + n];
        for (int k = 0; k < kStep; ++k) sum += a.x[m * kStep + k] * b.x[k * 16 + n];
        acc.x[m * 16 + n] = sum;
      }
  }
  void store(float* p, const Accumulator& f, int ld) const {
    if (lane() != 0) return;
    check_fragment(p, ld, 16, 16, "store");
    for (int m = 0; m < 16; ++m)
      for (int n = 0; n < 16; ++n) p[m * ld + n] = f.x[m * 16 + n];
  }

 private:
  // A fragment of `rows` x `columns` elements at p, rows ld apart, in shared memory.
  template <class T> void check_fragment(const T* p, int ld, int rows, int columns, const char* what) const {
    const std::ptrdiff_t offset = reinterpret_cast<const unsigned char*>(p) - block_->shared;
    const std::ptrdiff_t end =
        offset + (static_cast<std::ptrdiff_t>(rows - 1) * ld + columns) * static_cast<std::ptrdiff_t>(sizeof(T));
    const bool inside = offset >= 0 && end <= static_cast<std::ptrdiff_t>(block_->shared_bytes);
    if (inside && offset % 32 == 0 && (ld * sizeof(T)) % 16 == 0) return;
    std::fprintf(stderr, "emulated thread block: fragment %s at shared byte %td, row stride %d elements: %s\n", what,
                 offset, ld, inside ? "not 32-byte aligned or a stride wmma does not take" : "outside shared memory");
    std::abort();
  }

  float value_of(float x) const { return block_->tf32 ? tf32_rounded(x, Tf32Ties::kAwayFromZero) : x; }
  float value_of(EmulatedBf16 x) const { return bf16_to_f32(x.bits); }

  EmulatedBlock* block_;
  int thread_;
};

// Runs body(executor, shared) for every thread of every block of the grid, `threads` (a
// multiple of 32) per block, each block with `shared_bytes` of all-ones shared memory,
// with EmulatedExecutor<Operand> (`tf32`: float operands rounded to TF32). The threads
// are made once per grid and run its blocks one after another.
template <class Operand, class Body>
void run_emulated_grid(int64_t grid_x, int64_t grid_y, int64_t grid_z, int threads, size_t shared_bytes, bool tf32,
                       const Body& body) {
  std::vector<float> storage((shared_bytes + sizeof(float) - 1) / sizeof(float));  // float-aligned bytes
  unsigned char* shared = reinterpret_cast<unsigned char*>(storage.data());
  EmulatedBlock block;
  block.tf32 = tf32;
  block.shared = shared;
  block.shared_bytes = shared_bytes;
  block.block_barrier = std::make_unique<EmulatedBarrier>(threads);
  for (int w = 0; w < threads / 32; ++w) block.warp_barriers.push_back(std::make_unique<EmulatedBarrier>(32));
  block.exchange.assign(threads, 0.0);
  // The block's threads and this one meet before and after each block.
  EmulatedBarrier start(threads + 1), done(threads + 1);
  const int64_t blocks = grid_x * grid_y * grid_z;
  std::vector<std::thread> workers;
  workers.reserve(threads);
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      for (int64_t i = 0; i < blocks; ++i) {
        start.wait("block start");
        body(EmulatedExecutor<Operand>(&block, t), shared);
        done.wait("block end");
      }
    });
  for (int64_t i = 0; i < blocks; ++i) {
    block.x = i % grid_x, block.y = i / grid_x % grid_y, block.z = i / (grid_x * grid_y);
    if (shared_bytes > 0) std::memset(shared, 0xff, shared_bytes);  // (a warp-only kernel has none)
    start.wait("block start");
    done.wait("block end");
  }
  for (std::thread& w : workers) w.join();
}

}  // namespace xcomp::test
