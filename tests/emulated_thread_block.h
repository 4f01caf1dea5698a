// A CPU emulation of CUDA thread blocks, for kernels written over an executor
// (model/cuda/flash_attention_kernels.h), so that their indexing, masking and
// synchronisation run in the unit suite on machines without a GPU:
//  - every thread of a block is a std::thread (made once per grid); blocks run one after
//    another;
//  - sync() and sync_warp() are barriers; one that waits a minute aborts, naming itself
//    (a barrier some thread never reaches would hang on a GPU, or worse); shuffle_xor
//    exchanges through a per-warp buffer between two warp barriers (so every lane must
//    call it, as __shfl_xor_sync with a full mask requires);
//  - shared memory starts as NaN, so a read of a value no thread wrote shows in the result;
//  - a 16x16x8 fragment is held by lane 0 of its warp, whose load, fill, mma and store do
//    the work (the other lanes' calls do nothing): a lane reading a tile another lane's
//    store wrote without sync_warp() between races with it, as on the GPU;
//  - with `tf32`, a fragment load rounds to TF32 (10-bit mantissa, to nearest, ties away
//    from zero, as __float_to_tf32); products accumulate in fp32;
//  - fragment loads and stores must address shared memory as wmma requires (32-byte
//    aligned, a row stride that is a multiple of 4 floats) and stay inside it: else the
//    emulation aborts, naming the offset (on a GPU: a fault, or silently wrong data).
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

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

struct EmulatedBlock {
  int64_t x = 0, y = 0, z = 0;
  bool tf32 = false;
  const float* shared = nullptr;  // the block's shared memory, `shared_floats` long
  size_t shared_floats = 0;
  std::unique_ptr<EmulatedBarrier> block_barrier;
  std::vector<std::unique_ptr<EmulatedBarrier>> warp_barriers;
  std::vector<float> exchange;  // a slot per thread, for shuffle_xor
};

// One thread of an emulated block: the executor the kernel bodies take.
class EmulatedExecutor {
 public:
  struct MatrixA {  // [16][8]
    float x[16 * 8];
  };
  struct MatrixBRowMajor {  // [8][16]
    float x[8 * 16];
  };
  struct MatrixBColMajor {  // [8][16], read from column-major memory
    float x[8 * 16];
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
  float shuffle_xor(float value, int lane_mask) const {
    block_->exchange[thread_] = value;
    block_->warp_barriers[warp()]->wait("shuffle_xor");
    const float other = block_->exchange[warp() * 32 + (lane() ^ lane_mask)];
    block_->warp_barriers[warp()]->wait("shuffle_xor");
    return other;
  }

  void load(MatrixA& f, const float* p, int ld) const {
    if (lane() != 0) return;
    check_fragment(p, ld, 16, 8, "load (matrix_a)");
    for (int r = 0; r < 16; ++r)
      for (int c = 0; c < 8; ++c) f.x[r * 8 + c] = operand(p[r * ld + c]);
  }
  void load(MatrixBRowMajor& f, const float* p, int ld) const {
    if (lane() != 0) return;
    check_fragment(p, ld, 8, 16, "load (matrix_b, row-major)");
    for (int k = 0; k < 8; ++k)
      for (int n = 0; n < 16; ++n) f.x[k * 16 + n] = operand(p[k * ld + n]);
  }
  void load(MatrixBColMajor& f, const float* p, int ld) const {
    if (lane() != 0) return;
    check_fragment(p, ld, 16, 8, "load (matrix_b, column-major)");
    for (int k = 0; k < 8; ++k)
      for (int n = 0; n < 16; ++n) f.x[k * 16 + n] = operand(p[n * ld + k]);
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
        for (int k = 0; k < 8; ++k) sum += a.x[m * 8 + k] * b.x[k * 16 + n];
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
  // A fragment of `rows` x `columns` floats at p, rows ld apart, in shared memory.
  void check_fragment(const float* p, int ld, int rows, int columns, const char* what) const {
    const std::ptrdiff_t offset = p - block_->shared;
    const bool inside = offset >= 0 && offset + static_cast<std::ptrdiff_t>(rows - 1) * ld + columns <=
                                           static_cast<std::ptrdiff_t>(block_->shared_floats);
    if (inside && offset % 8 == 0 && ld % 4 == 0) return;
    std::fprintf(stderr, "emulated thread block: fragment %s at shared float %td, row stride %d: %s\n", what, offset,
                 ld, inside ? "not 32-byte aligned or a stride wmma does not take" : "outside shared memory");
    std::abort();
  }

  float operand(float x) const { return block_->tf32 ? tf32_rounded(x, Tf32Ties::kAwayFromZero) : x; }

  EmulatedBlock* block_;
  int thread_;
};

// Runs body(executor, shared) for every thread of every block of the grid, `threads` (a
// multiple of 32) per block, each block with `shared_floats` of NaN-filled shared memory.
// The threads are made once per grid and run its blocks one after another.
template <class Body>
void run_emulated_grid(int64_t grid_x, int64_t grid_y, int64_t grid_z, int threads, size_t shared_floats, bool tf32,
                       const Body& body) {
  std::vector<float> shared(shared_floats);
  EmulatedBlock block;
  block.tf32 = tf32;
  block.shared = shared.data();
  block.shared_floats = shared_floats;
  block.block_barrier = std::make_unique<EmulatedBarrier>(threads);
  for (int w = 0; w < threads / 32; ++w) block.warp_barriers.push_back(std::make_unique<EmulatedBarrier>(32));
  block.exchange.assign(threads, 0.f);
  // The block's threads and this one meet before and after each block.
  EmulatedBarrier start(threads + 1), done(threads + 1);
  const int64_t blocks = grid_x * grid_y * grid_z;
  std::vector<std::thread> workers;
  workers.reserve(threads);
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      for (int64_t i = 0; i < blocks; ++i) {
        start.wait("block start");
        body(EmulatedExecutor(&block, t), shared.data());
        done.wait("block end");
      }
    });
  for (int64_t i = 0; i < blocks; ++i) {
    block.x = i % grid_x, block.y = i / grid_x % grid_y, block.z = i / (grid_x * grid_y);
    std::fill(shared.begin(), shared.end(), std::numeric_limits<float>::quiet_NaN());
    start.wait("block start");
    done.wait("block end");
  }
  for (std::thread& w : workers) w.join();
}

}  // namespace xcomp::test
