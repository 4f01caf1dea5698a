// The models `xcomp bench train` measures: stories260K as trained (from the fixtures) or
// a LLaMA-shaped model with random weights, for shapes too large to download just to time
// a step (LLaMA-3-8B, LLaMA-3.2-1B) and a mid-sized one (dim512). Random weights are
// N(0, 0.02)-like and finite: the timing of a step does not depend on their values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/llama_config.h"
#include "model/llama_weights.h"
#include "model/tensor.h"

namespace xcomp {

struct BenchShape {
  std::string name;       // as --shape takes it
  int64_t text_len;       // default --text-len
  int64_t lora_r;         // default --lora-r
  bool from_fixture;      // stories260K: the real weights from $XCOMP_FIXTURES
};

const std::vector<BenchShape>& bench_shapes();
// The shape called `name`, or an InputError listing the known ones.
const BenchShape& find_bench_shape(const std::string& name);

struct BenchModel {
  LlamaConfig config;
  LlamaWeights weights;  // host tensors
};

// The config and weights of a shape. Random weights: matrices in `matrix_dtype` (F32 for
// the CPU backend; BF16 halves host memory for the CUDA backend, whose upload_weight
// takes it), norms F32 ones; drawn in parallel from the counter-based generator keyed
// by `seed`. `fixtures_dir` is where stories260K/ lives.
BenchModel make_bench_model(const BenchShape& shape, DType matrix_dtype, uint64_t seed, const std::string& fixtures_dir);

// The config of a random-weight shape (no weights); for shapes from a fixture, loads it.
LlamaConfig bench_config(const BenchShape& shape, const std::string& fixtures_dir);

}  // namespace xcomp
