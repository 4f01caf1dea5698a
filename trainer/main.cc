// xcomp: train, evaluate and serve 500xCompressor-style prompt compressors.
// Standard output carries only a command's data (generated text, reports); logs and
// progress go to standard error.
#include <glog/logging.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "comm/process_group.h"
#include "model/input_error.h"
#include "trainer/commands.h"
#include "trainer/stop_signals.h"

namespace {

struct Subcommand {
  const char* name;
  int (*run)(const std::vector<std::string>&);
  const char* summary;
};

const Subcommand kSubcommands[] = {
    {"generate", xcomp::run_generate_command, "generate text from a prompt with a model"},
    {"convert", xcomp::run_convert_command, "convert llama2.c or GGUF models to a Hugging Face directory"},
    {"inspect", xcomp::run_inspect_command, "show a model's config, parameter count and tensors, or what a .xkv prompt holds"},
    {"train", xcomp::run_train_command, "train a compressor from a YAML experiment file"},
    {"prepare", xcomp::run_prepare_command, "turn text and QA files into HDF5 token shards"},
    {"tokenize", xcomp::run_tokenize_command, "text lines to token ids and back (--decode)"},
    {"eval", xcomp::run_eval_command, "score a trained compressor (regeneration or QA) against baselines"},
    {"compress", xcomp::run_compress_command, "compress a text into a prompt file (.xkv)"},
    {"answer", xcomp::run_answer_command, "answer a question from a compressed prompt"},
    {"regenerate", xcomp::run_regenerate_command, "regenerate the text of a compressed prompt"},
    {"export-peft", xcomp::run_export_peft_command, "write a checkpoint as a PEFT adapter directory"},
    {"bench", xcomp::run_bench_command, "benchmarks: bench tokenize"},
};

void print_usage(std::ostream& out) {
  out << "usage: xcomp <command> [options]   (xcomp <command> --help for its options)\n\ncommands:\n";
  for (const auto& c : kSubcommands) out << "  " << c.name << std::string(12 - std::strlen(c.name), ' ') << c.summary << "\n";
}

// An error on one rank of a multi-rank job would leave the others waiting in a
// collective forever: abort the whole job instead.
int failed(const std::optional<xcomp::MpiSession>& mpi) {
  if (mpi && mpi->placement().world_size > 1) xcomp::abort_job(1);
  return 1;
}

// The commands that run as ranks of a job. The others skip MPI's start-up (about half a
// second for a singleton), which adds up over scripts that call xcomp many times. A
// benchmark starts MPI only when mpirun/srun started it, so a plain `xcomp bench` stays
// MPI-free.
bool runs_distributed(const std::string& command) {
  return command == "train" || command == "eval" || (command == "bench" && xcomp::launched_by_mpi());
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
  // Launched by mpirun/srun, or alone as a world of one (an MPI singleton).
  std::optional<xcomp::MpiSession> mpi;
  if (runs_distributed(command)) {
    // Before MPI and OpenMP start threads: only the trainer's watcher takes these.
    xcomp::block_stop_signals();
    mpi.emplace(&argc, &argv);
    if (mpi->placement().rank != 0) FLAGS_minloglevel = google::GLOG_WARNING;  // rank 0 speaks for the job
  }
  for (const auto& c : kSubcommands) {
    if (command != c.name) continue;
    try {
      return c.run(args);
    } catch (const xcomp::InputError& e) {
      std::cerr << "xcomp " << command << ": error: " << e.what() << "\n";
      return failed(mpi);
    } catch (const std::bad_alloc&) {
      std::cerr << "xcomp " << command << ": error: out of memory\n";
      return failed(mpi);
    } catch (const std::exception& e) {
      // A system error (a directory that cannot be created, a full disk) that no layer
      // turned into an InputError: still one line and a non-zero exit, never an abort.
      std::cerr << "xcomp " << command << ": error: " << e.what() << "\n";
      return failed(mpi);
    }
  }
  std::cerr << "xcomp: unknown command '" << command << "'\n";
  print_usage(std::cerr);
  return 2;
}
