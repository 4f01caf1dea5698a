// Attention shapes and key masks shared by the CUDA backend's attention tests
// (tests/cuda) and the emulated flash kernels' (tests/unit).
#pragma once

#include <cstdint>
#include <ostream>

#include "model/tensor.h"

namespace xcomp::test {

struct AttentionCase {
  const char* name;
  int64_t batch, t, heads, kv_heads, d, capacity, length;
};

inline void PrintTo(const AttentionCase& c, std::ostream* os) { *os << c.name; }

// Row 0: a few padded keys in the prefix and among the queries' own. Row 1 (if any):
// every key up to and including query 0's own entry is padding, so query 0 sees nothing.
inline Tensor attention_key_valid(const AttentionCase& c) {
  Tensor valid = Tensor::empty({c.batch, c.capacity}, DType::I32);
  int32_t* v = valid.data<int32_t>();
  for (int64_t i = 0; i < valid.numel(); ++i) v[i] = 1;
  const int64_t first_query = c.length - c.t;
  v[1 % c.length] = 0;
  v[c.length / 2] = 0;
  v[first_query + (c.t > 2 ? 2 : 0)] = 0;
  if (c.batch > 1) {
    for (int64_t s = 0; s <= first_query; ++s) v[c.capacity + s] = 0;
  }
  return valid;
}

}  // namespace xcomp::test
