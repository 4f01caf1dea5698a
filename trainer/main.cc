// xcomp: train, evaluate and serve 500xCompressor-style prompt compressors.
// Standard output carries only a command's data (generated text, reports); logs and
// progress go to standard error.
#include <glog/logging.h>

#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "model/input_error.h"
#include "trainer/commands.h"

namespace {

struct Subcommand {
  const char* name;
  int (*run)(const std::vector<std::string>&);
  const char* summary;
};

const Subcommand kSubcommands[] = {
    {"generate", xcomp::run_generate_command, "generate text from a prompt with a model"},
    {"convert", xcomp::run_convert_command, "convert llama2.c or GGUF models to a Hugging Face directory"},
    {"inspect", xcomp::run_inspect_command, "show a model's config, parameter count and tensors"},
    {"train", xcomp::run_train_command, "train a compressor from a YAML experiment file"},
    {"prepare", xcomp::run_prepare_command, "turn text and QA files into HDF5 token shards"},
    {"tokenize", xcomp::run_tokenize_command, "text lines to token ids and back (--decode)"},
    {"bench", xcomp::run_bench_command, "benchmarks: bench tokenize"},
};

void print_usage(std::ostream& out) {
  out << "usage: xcomp <command> [options]   (xcomp <command> --help for its options)\n\ncommands:\n";
  for (const auto& c : kSubcommands) out << "  " << c.name << std::string(12 - std::strlen(c.name), ' ') << c.summary << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    print_usage(argc < 2 ? std::cerr : std::cout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  for (const auto& c : kSubcommands) {
    if (command != c.name) continue;
    try {
      return c.run(args);
    } catch (const xcomp::InputError& e) {
      std::cerr << "xcomp " << command << ": error: " << e.what() << "\n";
      return 1;
    } catch (const std::bad_alloc&) {
      std::cerr << "xcomp " << command << ": error: out of memory\n";
      return 1;
    } catch (const std::exception& e) {
      // A system error (a directory that cannot be created, a full disk) that no layer
      // turned into an InputError: still one line and a non-zero exit, never an abort.
      std::cerr << "xcomp " << command << ": error: " << e.what() << "\n";
      return 1;
    }
  }
  std::cerr << "xcomp: unknown command '" << command << "'\n";
  print_usage(std::cerr);
  return 2;
}
