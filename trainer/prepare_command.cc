// xcomp prepare: turns arXiv metadata, plain text, generic JSON lines, SQuAD, MRQA or
// bAbI files into HDF5 token shards for training and evaluation (io/shards.h).
//
// Shards are written into DIR/.prepare-incomplete/ and moved into DIR only when every
// input has been read, so a run that fails half way leaves no shards that could pass
// for a complete data set.
#include <filesystem>
#include <iostream>
#include <regex>

#include "io/atomic_file.h"
#include "io/gguf.h"
#include "io/gguf_llama.h"
#include "io/tokenizer_gguf.h"
#include "model/input_error.h"
#include "trainer/command_line.h"
#include "trainer/commands.h"
#include "trainer/prepare_run.h"

namespace xcomp {

namespace fs = std::filesystem;

namespace {

const char* kStagingName = ".prepare-incomplete";

std::vector<OptionSpec> prepare_options() {
  return {
      {"format", "FORMAT", "arxiv | text | jsonl | squad | mrqa | babi"},
      {"input", "FILE", "input file, gzip or not (repeat for several)"},
      {"out", "DIR", "output directory for <split>-00000.h5, ..."},
      {"tokenizer", "PATH", "tokenizer file or directory"},
      {"model", "PATH", "or: use the tokenizer a model carries (HF directory or .gguf)"},
      {"title", "", "arxiv: text is title + \"\\n\" + abstract"},
      {"separator", "TEXT", "text: document separator (default <|endoftext|>)"},
      {"text-field", "NAME", "jsonl: the field holding the text"},
      {"id-field", "NAME", "jsonl: the field holding the id (default <file>:<line>)"},
      {"split-by", "HOW", "none (default) | date | hash | ids"},
      {"split", "NAME", "the one split's name with --split-by none (default train)"},
      {"cutoff", "YYYY-MM", "date: train is before this month"},
      {"test-from", "YYYY-MM", "date: test window start (default: the cutoff)"},
      {"test-to", "YYYY-MM", "date: test window end, exclusive (default: none)"},
      {"test-fraction", "F", "hash: fraction of ids in test (default 0.1)"},
      {"test-ids", "FILE", "ids: the test ids, one a line"},
      {"on-error", "skip|fail", "malformed records: fail (default) or skip and count"},
      {"shard-tokens", "N", "at most N tokens a shard (default 16777216)"},
      {"max-doc-tokens", "N", "truncate documents (QA: contexts) to N tokens"},
      {"report", "FILE", "also write the report as JSON"},
      {"overwrite", "", "replace shards already in --out"},
  };
}

bool has_suffix(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The tokenizer named by --tokenizer, or the one --model carries (without loading the
// model's weights).
std::unique_ptr<Tokenizer> prepare_tokenizer(const CommandLine& cl) {
  if (cl.has("tokenizer") == cl.has("model")) throw_input_error("xcomp prepare: give exactly one of --tokenizer and --model");
  if (cl.has("tokenizer")) return load_tokenizer(cl.get("tokenizer"));
  const std::string model = cl.get("model");
  std::error_code ec;
  if (fs::is_directory(model, ec)) return load_tokenizer(model);
  if (has_suffix(model, ".gguf")) return tokenizer_from_gguf(read_gguf_tokenizer(GgufFile::open(model)));
  if (has_suffix(model, ".bin"))
    throw_input_error(model, ": a llama2.c model carries no tokenizer; pass --tokenizer (its tokenizer .bin or .model)");
  throw_input_error(model, ": expected a Hugging Face model directory or a .gguf file for --model");
}

SplitOptions split_options(const CommandLine& cl, const std::string& format) {
  SplitOptions o;
  o.by = cl.get("split-by", "none");
  o.single = cl.get("split", "train");
  if (!std::regex_match(o.single, std::regex("[A-Za-z0-9_]+")))
    throw_input_error("--split is '", o.single, "', expected letters, digits or _ (it names files)");
  o.cutoff = cl.get("cutoff");
  o.test_from = cl.get("test-from");
  o.test_to = cl.get("test-to");
  o.test_fraction = cl.get_double("test-fraction", 0.1, 0.0, 1.0);
  o.test_ids_file = cl.get("test-ids");
  if (o.by == "date" && format != "arxiv")
    throw_input_error("--split-by date needs dated documents: only --format arxiv has dates");
  return o;
}

const std::regex& shard_name_pattern() {
  static const std::regex pattern(".+-[0-9]{5}\\.h5");
  return pattern;
}

// Makes DIR and an empty staging directory inside it. Shards already in DIR would mix
// with the new ones into a data set nobody asked for, so they are an error unless
// --overwrite, which removes them first.
std::string prepare_out_dir(const std::string& out, bool overwrite) {
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec || !fs::is_directory(out, ec)) throw_input_error(out, ": cannot create the output directory (", ec.message(), ")");
  std::vector<fs::path> old_shards;
  for (const auto& entry : fs::directory_iterator(out, ec))
    if (std::regex_match(entry.path().filename().string(), shard_name_pattern())) old_shards.push_back(entry.path());
  if (ec) throw_input_error(out, ": cannot list the output directory (", ec.message(), ")");
  if (!old_shards.empty() && !overwrite)
    throw_input_error(out, ": already holds shards (", old_shards.front().filename().string(),
                      "); pass --overwrite to replace them");
  for (const fs::path& path : old_shards)
    if (!fs::remove(path, ec)) throw_input_error(path.string(), ": cannot remove (", ec.message(), ")");
  const std::string staging = out + "/" + kStagingName;
  fs::remove_all(staging, ec);  // what a crashed run left behind
  fs::create_directories(staging, ec);
  if (ec) throw_input_error(staging, ": cannot create (", ec.message(), ")");
  return staging;
}

// Removes the staging directory when the run fails, so nothing half-written remains.
class StagingGuard {
 public:
  explicit StagingGuard(std::string dir) : dir_(std::move(dir)) {}
  ~StagingGuard() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

 private:
  std::string dir_;
};

void publish_shards(const std::string& staging, const std::string& out, const PrepareReport& report) {
  for (const auto& [split, counts] : report.splits)
    for (const std::string& file : counts.files) {
      std::error_code ec;
      fs::rename(staging + "/" + file, out + "/" + file, ec);
      if (ec) throw_input_error(out, "/", file, ": cannot move the finished shard into place (", ec.message(), ")");
    }
}

void write_report(const std::string& path, const PrepareReport& report) {
  AtomicFile file(path);
  file.write(report.to_json().dump(2) + "\n");
  file.commit();
}

// An option meant for another format would be silently ignored; say so instead.
void check_format_options(const CommandLine& cl, const std::string& format) {
  const std::pair<const char*, const char*> owners[] = {
      {"title", "arxiv"}, {"separator", "text"}, {"text-field", "jsonl"}, {"id-field", "jsonl"}};
  for (const auto& [option, owner] : owners)
    if (cl.has(option) && format != owner)
      throw_input_error("xcomp prepare: --", option, " applies to --format ", owner, ", not ", format);
}

PrepareJob job_from(const CommandLine& cl, const std::string& format) {
  check_format_options(cl, format);
  PrepareJob job;
  job.format = format;
  job.inputs = cl.get_all("input");
  if (job.inputs.empty()) throw_input_error("xcomp prepare: --input FILE is required\n", cl.usage());
  job.with_title = cl.has("title");
  job.separator = cl.get("separator", job.separator);
  job.text_field = cl.get("text-field");
  job.id_field = cl.get("id-field");
  if (format == "jsonl" && job.text_field.empty()) throw_input_error("xcomp prepare: --format jsonl needs --text-field NAME");
  job.shard_tokens = cl.get_int("shard-tokens", job.shard_tokens, 1, int64_t{1} << 40);
  job.max_doc_tokens = cl.get_int("max-doc-tokens", 0, 1, int64_t{1} << 40);
  const std::string on_error = cl.get("on-error", "fail");
  if (on_error != "fail" && on_error != "skip") throw_input_error("--on-error is '", on_error, "', expected skip or fail");
  job.skip_malformed = on_error == "skip";
  return job;
}

}  // namespace

int run_prepare_command(const std::vector<std::string>& args) {
  CommandLine cl("prepare",
                 "--format FORMAT --input FILE [--input FILE ...] --out DIR (--tokenizer PATH | --model PATH) [options]",
                 prepare_options());
  if (!cl.parse(args)) return 0;
  cl.expect_positional(0, 0);
  const std::string format = cl.require("format");
  if (!std::regex_match(format, std::regex("arxiv|text|jsonl|squad|mrqa|babi")))
    throw_input_error("--format is '", format, "', expected arxiv, text, jsonl, squad, mrqa or babi");
  PrepareJob job = job_from(cl, format);
  SplitPolicy split(split_options(cl, format));
  const std::string out = cl.require("out");
  std::unique_ptr<Tokenizer> tokenizer = prepare_tokenizer(cl);

  job.tokenizer = tokenizer.get();
  job.split = &split;
  job.attributes.tokenizer_name = tokenizer->name();
  job.attributes.tokenizer_sha256 = tokenizer->sha256();
  job.attributes.vocab_size = tokenizer->vocab_size();
  job.attributes.bos_id = tokenizer->bos_id();
  job.attributes.eos_id = tokenizer->eos_id();

  PrepareReport report;
  report.format = format;
  report.inputs = job.inputs;
  report.out_dir = out;
  report.tokenizer_name = tokenizer->name();
  report.tokenizer_sha256 = tokenizer->sha256();
  {
    job.shard_dir = prepare_out_dir(out, cl.has("overwrite"));
    StagingGuard guard(job.shard_dir);
    run_prepare(job, report);
    publish_shards(job.shard_dir, out, report);
  }
  std::cerr << report.summary();
  if (cl.has("report")) write_report(cl.get("report"), report);
  return 0;
}

}  // namespace xcomp
