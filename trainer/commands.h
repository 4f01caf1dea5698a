// The xcomp subcommands. Each takes the arguments after its name and returns the exit
// status; InputError escaping one is printed by main as a one-line error.
#pragma once

#include <string>
#include <vector>

namespace xcomp {

int run_convert_command(const std::vector<std::string>& args);
int run_generate_command(const std::vector<std::string>& args);
int run_inspect_command(const std::vector<std::string>& args);
int run_train_command(const std::vector<std::string>& args);
int run_prepare_command(const std::vector<std::string>& args);
int run_tokenize_command(const std::vector<std::string>& args);
int run_bench_command(const std::vector<std::string>& args);
int run_eval_command(const std::vector<std::string>& args);
int run_compress_command(const std::vector<std::string>& args);
int run_answer_command(const std::vector<std::string>& args);
int run_regenerate_command(const std::vector<std::string>& args);
int run_export_peft_command(const std::vector<std::string>& args);

}  // namespace xcomp
