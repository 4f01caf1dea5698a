// xcomp bench NAME [options]: performance measurements printed as tables on standard
// output. Adding a benchmark = one line in kBenchmarks and its function in benchmarks.h.
#include <cstring>
#include <iostream>

#include "model/input_error.h"
#include "trainer/benchmarks.h"
#include "trainer/commands.h"

namespace xcomp {
namespace {

struct Benchmark {
  const char* name;
  int (*run)(const std::vector<std::string>&);
  const char* summary;
};

const Benchmark kBenchmarks[] = {
    {"tokenize", run_tokenize_benchmark, "MB/s of text encoded by each tokenizer, one thread and all cores"},
    {"train", run_train_benchmark, "one training step: time, tokens/s, model FLOPs and MFU (--reference: PyTorch beside it)"},
    {"attention", run_attention_benchmark, "the attention op at a step's shapes, each CUDA kernel side by side: ms, TFLOP/s, agreement"},
};

std::string usage() {
  std::string out = "usage: xcomp bench <benchmark> [options]   (xcomp bench <benchmark> --help)\n\nbenchmarks:\n";
  for (const auto& b : kBenchmarks) {
    out += std::string("  ") + b.name + std::string(12 - std::min<size_t>(11, std::strlen(b.name)), ' ') + b.summary + "\n";
  }
  return out;
}

}  // namespace

int run_bench_command(const std::vector<std::string>& args) {
  if (args.empty()) throw_input_error("xcomp bench: which benchmark?\n", usage());
  if (args[0] == "--help" || args[0] == "-h") {
    std::cout << usage();
    return 0;
  }
  for (const auto& b : kBenchmarks) {
    if (args[0] == b.name) return b.run(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  throw_input_error("xcomp bench: unknown benchmark '", args[0], "'\n", usage());
}

}  // namespace xcomp
