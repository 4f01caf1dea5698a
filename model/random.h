// Counter-based randomness: every random number is a pure function of (seed, purpose,
// step, index), so runs are reproducible and resumable without saving generator state
// beyond the seed and the step.
#pragma once

#include <cstdint>

// The CUDA backend draws the same numbers on the device (dropout masks must match the
// CPU's bit for bit), so these pure functions compile for both sides under nvcc.
#if defined(__CUDACC__)
#define XCOMP_HOST_DEVICE __host__ __device__
#else
#define XCOMP_HOST_DEVICE
#endif

namespace xcomp {

// Why a random number is drawn; keeps streams for different purposes independent.
enum class RandomPurpose : uint64_t { kSampling = 1, kLoraDropout = 2, kDataOrder = 3, kInit = 4 };

// SplitMix64's finaliser: a bijective mix with full avalanche.
XCOMP_HOST_DEVICE inline uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

XCOMP_HOST_DEVICE inline uint64_t counter_random_u64(uint64_t seed, RandomPurpose purpose, uint64_t step, uint64_t index) {
  uint64_t h = mix64(seed);
  h = mix64(h ^ static_cast<uint64_t>(purpose));
  h = mix64(h ^ step);
  return mix64(h ^ index);
}

// Uniform in [0, 1) with 53 random bits.
XCOMP_HOST_DEVICE inline double counter_random_uniform(uint64_t seed, RandomPurpose purpose, uint64_t step, uint64_t index) {
  return static_cast<double>(counter_random_u64(seed, purpose, step, index) >> 11) * 0x1.0p-53;
}

}  // namespace xcomp
