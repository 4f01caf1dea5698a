// xcomp eval: a trained compressor against the base model with the full context and
// with none, on the same items -- regeneration of held-out documents (per text length)
// or QA over prepared QA shards -- writing report.json, predictions.jsonl and report.md.
#include <cblas.h>
#include <glob.h>
#include <glog/logging.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>

#include "comm/mpi_communicator.h"
#include "comm/process_group.h"
#include "io/atomic_file.h"
#include "model/input_error.h"
#include "trainer/backend.h"
#include "trainer/command_line.h"
#include "trainer/commands.h"
#include "trainer/cpu_threads.h"
#include "trainer/eval_decoding.h"
#include "trainer/eval_gather.h"
#include "trainer/eval_items.h"
#include "trainer/eval_report.h"

namespace xcomp {

namespace {

std::vector<std::string> expand_data_arguments(const std::vector<std::string>& patterns) {
  std::vector<std::string> paths;
  for (const std::string& pattern : patterns) {
    glob_t g{};
    const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
    const size_t found = rc == 0 ? g.gl_pathc : 0;
    for (size_t i = 0; i < found; ++i) paths.emplace_back(g.gl_pathv[i]);
    ::globfree(&g);
    if (found == 0) throw_input_error("--data: '", pattern, "' matches no file (prepare shards with xcomp prepare)");
  }
  if (paths.empty()) throw_input_error("--data: no shards given (--data SHARD.h5, repeatable, globs allowed)");
  return paths;
}

std::vector<int64_t> parse_lengths(const std::string& text, const std::string& option) {
  std::vector<int64_t> lengths;
  std::stringstream in(text);
  for (std::string piece; std::getline(in, piece, ',');) {
    char* end = nullptr;
    const long long v = std::strtoll(piece.c_str(), &end, 10);
    if (piece.empty() || *end != '\0' || v < 1)
      throw_input_error(option, ": expected positive integers separated by commas, got '", text, "'");
    lengths.push_back(v);
  }
  return lengths;
}

std::vector<EvalSystem> parse_systems(const std::string& text) {
  std::vector<EvalSystem> systems;
  std::stringstream in(text);
  for (std::string piece; std::getline(in, piece, ',');) {
    bool known = false;
    for (EvalSystem s : kEvalSystems)
      if (piece == eval_system_name(s)) {
        systems.push_back(s);
        known = true;
      }
    if (!known) throw_input_error("--systems: unknown system '", piece, "' (compressed, full_context, no_context)");
  }
  if (systems.empty()) throw_input_error("--systems: name at least one system");
  return systems;
}


// Logs progress every few items; the items are this rank's.
class Progress {
 public:
  explicit Progress(size_t total) : total_(total), start_(std::chrono::steady_clock::now()) {}
  void step(size_t items) {
    const size_t before = done_;
    done_ += items;
    if (done_ / 10 == before / 10 && done_ != total_) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    LOG(INFO) << "evaluated " << done_ << "/" << total_ << " items (" << s << " s)";
  }

 private:
  size_t total_, done_ = 0;
  std::chrono::steady_clock::time_point start_;
};

struct EvalJob {
  TrainedCompressor* trained = nullptr;
  std::vector<EvalSystem> systems;
  int rank = 0, world = 1;
  int64_t batch = 1;  // items decoded together
};

// This rank's items, in batches of job.batch.
std::vector<std::vector<size_t>> batches_of(const std::vector<size_t>& mine, int64_t batch) {
  std::vector<std::vector<size_t>> out;
  for (size_t i = 0; i < mine.size(); i += static_cast<size_t>(batch))
    out.emplace_back(mine.begin() + i, mine.begin() + std::min(mine.size(), i + static_cast<size_t>(batch)));
  return out;
}

std::vector<nlohmann::json> evaluate_regeneration(const EvalJob& job, const EvalDecoder& decoder,
                                                  const std::vector<RegenerationItem>& items, int64_t text_len,
                                                  int64_t first_item) {
  const Tokenizer& tokenizer = *job.trained->loaded.tokenizer;
  std::vector<nlohmann::json> records;
  const std::vector<size_t> mine = items_of_rank(items, job.rank, job.world);
  Progress progress(mine.size());
  for (const std::vector<size_t>& batch : batches_of(mine, job.batch)) {
    std::vector<const TokenIds*> texts;
    for (size_t i : batch) texts.push_back(&items[i].text);
    // Records stay in item order, each item's systems together.
    std::vector<std::vector<TokenIds>> produced;  // [system][row]
    for (EvalSystem system : job.systems) produced.push_back(decoder.regenerate(texts, system));
    for (size_t row = 0; row < batch.size(); ++row) {
      const size_t i = batch[row];
      const RegenerationItem& item = items[i];
      const std::string reference = tokenizer.decode(item.text, /*skip_special=*/true);
      for (size_t s = 0; s < job.systems.size(); ++s) {
        const TokenIds& ids = produced[s][row];
        records.push_back(regeneration_record(first_item + static_cast<int64_t>(i), item.id,
                                              eval_system_name(job.systems[s]), text_len, reference,
                                              tokenizer.decode(ids, /*skip_special=*/true), ids == item.text));
      }
    }
    progress.step(batch.size());
  }
  return records;
}

// QA predictions are cut at the first line break: answers are one line, and base models
// given no instruction run on into the next "Question:".
std::string answer_text(const Tokenizer& tokenizer, const std::vector<int32_t>& ids) {
  std::string text = tokenizer.decode(ids, /*skip_special=*/true);
  const size_t newline = text.find('\n');
  if (newline != std::string::npos) text.resize(newline);
  return text;
}

std::vector<nlohmann::json> evaluate_qa(const EvalJob& job, const EvalDecoder& decoder,
                                        const std::vector<QaItem>& items) {
  const Tokenizer& tokenizer = *job.trained->loaded.tokenizer;
  std::vector<nlohmann::json> records;
  const std::vector<size_t> mine = items_of_rank(items, job.rank, job.world);
  Progress progress(mine.size());
  for (const std::vector<size_t>& batch : batches_of(mine, job.batch)) {
    std::vector<QaQuestion> questions;
    for (size_t i : batch) questions.push_back({&items[i].context, &items[i].question});
    std::vector<std::vector<TokenIds>> produced;  // [system][row]
    for (EvalSystem system : job.systems) produced.push_back(decoder.answer(questions, system));
    for (size_t row = 0; row < batch.size(); ++row) {
      const size_t i = batch[row];
      const QaItem& item = items[i];
      const std::string question = tokenizer.decode(item.question);
      for (size_t s = 0; s < job.systems.size(); ++s)
        records.push_back(qa_record(static_cast<int64_t>(i), item.id, item.dataset, eval_system_name(job.systems[s]),
                                    question, answer_text(tokenizer, produced[s][row]), item.references,
                                    item.truncated));
    }
    progress.step(batch.size());
  }
  return records;
}

nlohmann::json report_header(const TrainedCompressor& t, const std::string& checkpoint_arg, BaselinePrompt baseline) {
  const CompressorSettings& s = t.compressor->settings();
  nlohmann::json header = {{"checkpoint", t.trainable_path},
                           {"baseline_prompt", baseline_prompt_name(baseline)},
                           {"checkpoint_argument", checkpoint_arg},
                           {"checkpoint_sha256", t.trainable_sha256},
                           {"model", t.loaded.config.source},
                           {"mode", name_of(s.mode)},
                           {"num_tokens", s.num_tokens},
                           {"decoder_positions", name_of(s.decoder_positions)},
                           {"lora_r", s.lora.r},
                           {"max_text_len", t.config.compressor.max_text_len}};
  // Only an experiment sets it (1 is the method); the report says when one did.
  if (s.memory_scale != 1.0f) header["memory_scale"] = s.memory_scale;
  return header;
}

}  // namespace

int run_eval_command(const std::vector<std::string>& args) {
  CommandLine cl("eval", "--checkpoint PATH --task regeneration|qa --data SHARDS --out DIR [options]",
                 {{"checkpoint", "PATH",
                   "trainable.safetensors, a checkpoint directory, or a run directory (its newest checkpoint)"},
                  {"config", "FILE",
                   "the run's config.yaml (default: found beside the checkpoint or up to two directories above)"},
                  {"model", "PATH", "the base model (default: the run's model.path)"},
                  {"tokenizer", "PATH", "its tokenizer (default: the run's model.tokenizer)"},
                  {"task", "NAME", "regeneration (corpus shards) or qa (QA shards)"},
                  {"data", "SHARDS", "HDF5 shard path or glob; repeatable"},
                  {"out", "DIR", "where report.json, predictions.jsonl and report.md go"},
                  {"text-lengths", "L1,L2,...",
                   "regeneration: text lengths to evaluate (default: the run's compressor.max_text_len)"},
                  {"max-text-len", "N", "qa: context tokens compressed (default: the run's compressor.max_text_len)"},
                  {"limit", "K", "items per text length (regeneration) or in all (qa); 0 = every one (default 0)"},
                  {"max-new-tokens", "N",
                   "qa: answer tokens at most (default 32); regeneration always stops at the text's length + 1"},
                  {"systems", "LIST", "any of compressed,full_context,no_context (default: all three)"},
                  {"baseline-prompt", "plain|chat",
                   "how the base model's full_context and no_context systems are asked: plain text in the layout "
                   "the compressor trains on (default), or the model's chat format (instruct models)"},
                  {"batch", "B",
                   "items decoded together (default 1: one at a time; larger is faster, and may differ from 1 in "
                   "the last bits of float rounding, so a near-tie between two tokens can go the other way)"},
                  {"device", "cpu|cuda",
                   "where the model runs (default cpu); cuda: the GPU of this rank's local rank, one rank per GPU"},
                  {"cuda-weights", "bf16|f32",
                   "with --device cuda: the frozen weights in bf16 or fp32 (the CPU backend's numbers); default: "
                   "the run's cuda_weights"},
                  {"threads", "N", "CPU threads (default: the cores divided by the ranks on this node)"}});
  if (!cl.parse(args)) return 0;
  cl.expect_positional(0, 0);
  const std::string task = cl.require("task");
  if (task != "regeneration" && task != "qa")
    throw_input_error("--task: expected regeneration or qa, got '", task, "'");
  const std::string out_dir = cl.require("out");
  const std::vector<std::string> shards = expand_data_arguments(cl.get_all("data"));
  use_cpu_threads(cpu_threads_for(cl.get_int("threads", 0, 0, 4096)));

  const Backend device = value_named<Backend>(cl.get("device", "cpu"), "--device");
  std::optional<CudaWeights> cuda_weights;  // default: the run's own, once its config is read
  if (cl.has("cuda-weights")) cuda_weights = value_named<CudaWeights>(cl.get("cuda-weights"), "--cuda-weights");
  TrainedCompressorOptions to;
  to.checkpoint = cl.require("checkpoint");
  to.config = cl.get("config");
  to.model = cl.get("model");
  to.tokenizer = cl.get("tokenizer");
  const TrainedRun run = find_trained_run(to);
  if (!cuda_weights) cuda_weights = run.config.cuda_weights;
  // The run's own kernel choices (its cuda: keys) as well: the XCOMP_CUDA_* variables
  // still decide where it left them at default.
  const std::unique_ptr<Ops> backend =
      make_backend(device, mpi_is_running() ? mpi_world_placement().local_rank : 0, *cuda_weights, run.config.cuda);
  Ops& ops = *backend;
  std::unique_ptr<TrainedCompressor> trained = load_trained_compressor(to, run, ops);
  const CompressorSettings& settings = trained->compressor->settings();
  if (settings.mode == CompressorMode::kNone) {
    LOG(INFO) << "checkpoint " << trained->trainable_path
              << ": mode none (no compression: the system 'compressed' is the fine-tuned model with the full context)";
    if (task != "qa")
      throw_input_error("--task ", task, ": checkpoint ", trained->trainable_path,
                        " was trained with compressor.mode none, which is for QA only (--task qa)");
  } else {
    LOG(INFO) << "checkpoint " << trained->trainable_path << ": " << name_of(settings.mode) << ", N = "
              << settings.num_tokens;
  }

  // Under mpirun each rank evaluates every world-th item; rank 0 gathers and writes.
  std::unique_ptr<Communicator> comm;
  if (mpi_is_running())
    comm = std::make_unique<MpiCommunicator>();
  else
    comm = std::make_unique<SingleProcessCommunicator>();
  EvalJob job;
  job.rank = comm->rank();
  job.world = comm->world_size();
  job.trained = trained.get();
  job.systems = parse_systems(cl.get("systems", "compressed,full_context,no_context"));
  job.batch = cl.get_int("batch", 1, 1, 4096);
  ShardExpectations expect;
  expect.tokenizer_sha256 = trained->loaded.tokenizer->sha256();
  expect.vocab_size = trained->loaded.config.vocab_size;
  const int64_t limit = cl.get_int("limit", 0, 0, INT64_MAX);

  std::vector<nlohmann::json> records;
  nlohmann::json report;
  const std::string baseline_arg = cl.get("baseline-prompt", "plain");
  if (baseline_arg != "plain" && baseline_arg != "chat")
    throw_input_error("--baseline-prompt: expected plain or chat, got '", baseline_arg, "'");
  const BaselinePrompt baseline = baseline_arg == "chat" ? BaselinePrompt::kChat : BaselinePrompt::kPlain;
  nlohmann::json header = report_header(*trained, to.checkpoint, baseline);
  header["device"] = name_of(device);  // where the numbers were computed (the GPU's differ in rounding)
  header["batch"] = job.batch;          // items decoded together: may change the last bits, as the device does
  header["limit"] = limit;              // items asked for (0 = all): with the data, which items were decoded
  if (device == Backend::kCuda) header["cuda_weights"] = name_of(*cuda_weights);
  // The kernels and allocator the run's cuda: keys or XCOMP_CUDA_* chose: they change the last bits.
  if (!ops.configuration().empty()) header["backend_configuration"] = ops.configuration();
  if (task == "regeneration") {
    const std::vector<int64_t> lengths = parse_lengths(
        cl.get("text-lengths", std::to_string(trained->config.compressor.max_text_len)), "--text-lengths");
    const EvalDecoder decoder(*trained, INT64_MAX / 2, baseline);
    int64_t first_item = 0;
    for (int64_t length : lengths) {
      const std::vector<RegenerationItem> items = read_regeneration_items(shards, expect, length, limit);
      if (items.empty()) throw_input_error("--data: no document has ", length, " tokens or more");
      LOG(INFO) << "regeneration of " << items.size() << " texts of " << length << " tokens";
      for (auto& r : evaluate_regeneration(job, decoder, items, length, first_item)) records.push_back(std::move(r));
      first_item += static_cast<int64_t>(items.size());
    }
    records = gather_records(*comm, records);
    report = regeneration_report(header, records);
  } else {
    const int64_t max_text_len = cl.get_int("max-text-len", trained->config.compressor.max_text_len, 1, 1 << 20);
    const std::vector<QaItem> items = read_qa_items(shards, expect, max_text_len, limit);
    if (items.empty()) throw_input_error("--data: the QA shards hold no example with a context");
    LOG(INFO) << "QA on " << items.size() << " questions";
    const EvalDecoder decoder(*trained, cl.get_int("max-new-tokens", 32, 1, 1 << 20), baseline);
    records = gather_records(*comm, evaluate_qa(job, decoder, items));
    report = qa_report(header, records);
  }
  if (job.rank != 0) return 0;
  std::filesystem::create_directories(out_dir);
  std::string lines;
  for (const auto& r : records) lines += eval_json_text(r) + "\n";
  write_file_atomically(out_dir + "/predictions.jsonl", lines);
  write_file_atomically(out_dir + "/report.json", eval_json_text(report, 2) + "\n");
  const std::string markdown = report_markdown(report);
  write_file_atomically(out_dir + "/report.md", markdown);
  std::cout << markdown;
  LOG(INFO) << "wrote " << out_dir << "/report.json, predictions.jsonl and report.md";
  return 0;
}

}  // namespace xcomp
