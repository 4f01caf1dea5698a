// The benchmarks behind `xcomp bench NAME`. Each takes the arguments after its name and
// returns the exit status, like a subcommand; bench_command.cc lists them.
#pragma once

#include <string>
#include <vector>

namespace xcomp {

int run_tokenize_benchmark(const std::vector<std::string>& args);
int run_train_benchmark(const std::vector<std::string>& args);
int run_attention_benchmark(const std::vector<std::string>& args);

}  // namespace xcomp
