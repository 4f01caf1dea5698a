// xcomp bench tokenize: how fast each tokenizer encodes text, in MB/s of UTF-8 input,
// on one thread and with the documents split across threads (encode is const and
// thread-safe). Every tokenizer first encodes the whole text once untimed, so caches are
// warm and the numbers are steady-state. tools/bench_tokenize_reference.py measures
// tiktoken and Hugging Face tokenizers on the same documents in the same units.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "io/gguf.h"
#include "io/gguf_llama.h"
#include "io/tokenizer.h"
#include "io/tokenizer_gguf.h"
#include "model/input_error.h"
#include "trainer/bench_environment.h"
#include "trainer/benchmarks.h"
#include "trainer/command_line.h"

namespace xcomp {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Documents = std::vector<std::string>;

std::string models_dir() { return env_or("XCOMP_MODELS", env_or("HOME", "/root") + "/.cache/xcomp"); }

std::string strip(const std::string& s) {
  const char* space = " \t\n\r\v\f";
  size_t begin = s.find_first_not_of(space);
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(space) - begin + 1);
}

// Documents are separated by <|endoftext|> when the file has it (TinyStories), else one
// per non-empty line; each is whitespace-stripped. tools/bench_tokenize_reference.py
// cuts them the same way.
Documents read_documents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_input_error(path, ": cannot open the benchmark text");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::string all = buffer.str();
  const std::string separator = all.find("<|endoftext|>") != std::string::npos ? "<|endoftext|>" : "\n";
  Documents docs;
  for (size_t begin = 0; begin <= all.size();) {
    size_t end = std::min(all.find(separator, begin), all.size());
    std::string doc = strip(all.substr(begin, end - begin));
    if (!doc.empty()) docs.push_back(std::move(doc));
    begin = end + separator.size();
  }
  if (docs.empty()) throw_input_error(path, ": no text to benchmark");
  return docs;
}

size_t total_bytes(const Documents& docs) {
  size_t n = 0;
  for (const auto& d : docs) n += d.size();
  return n;
}

// Contiguous ranges of documents with about equal bytes, one per thread.
std::vector<std::pair<size_t, size_t>> split_by_bytes(const Documents& docs, int parts) {
  const size_t per_part = total_bytes(docs) / parts + 1;
  std::vector<std::pair<size_t, size_t>> ranges;
  size_t begin = 0, bytes = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    bytes += docs[i].size();
    if (bytes >= per_part * (ranges.size() + 1) && static_cast<int>(ranges.size()) + 1 < parts) {
      ranges.emplace_back(begin, i + 1);
      begin = i + 1;
    }
  }
  ranges.emplace_back(begin, docs.size());
  return ranges;
}

struct Measurement {
  double mb_per_s = 0;
  size_t tokens = 0;  // per pass
};

// One pass over all documents with `threads` threads; returns the tokens produced.
size_t encode_pass(const Tokenizer& tok, const Documents& docs, int threads) {
  if (threads == 1) {
    size_t tokens = 0;
    for (const auto& d : docs) tokens += tok.encode(d).size();
    return tokens;
  }
  auto ranges = split_by_bytes(docs, threads);
  std::vector<size_t> tokens(ranges.size(), 0);
  std::vector<std::thread> pool;
  for (size_t t = 0; t < ranges.size(); ++t) {
    pool.emplace_back([&, t] {
      for (size_t i = ranges[t].first; i < ranges[t].second; ++i) tokens[t] += tok.encode(docs[i]).size();
    });
  }
  for (auto& th : pool) th.join();
  size_t sum = 0;
  for (size_t n : tokens) sum += n;
  return sum;
}

// Whole passes until `seconds` have passed (at least one).
Measurement measure(const Tokenizer& tok, const Documents& docs, int threads, double seconds) {
  Measurement m;
  size_t passes = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  do {
    m.tokens = encode_pass(tok, docs, threads);
    ++passes;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < seconds);
  m.mb_per_s = static_cast<double>(total_bytes(docs)) * passes / elapsed / 1e6;
  return m;
}

struct Contender {
  std::string label;
  std::unique_ptr<Tokenizer> tokenizer;
};

std::unique_ptr<Tokenizer> open_tokenizer(const std::string& path) {
  if (path.size() > 5 && path.compare(path.size() - 5, 5, ".gguf") == 0) {
    // The vocabulary only: read_gguf_tokenizer does not touch the weights.
    return tokenizer_from_gguf(read_gguf_tokenizer(GgufFile::open(path)));
  }
  return load_tokenizer(path);
}

// The given tokenizers, or the default four that are present.
std::vector<Contender> contenders(const std::vector<std::string>& paths) {
  std::vector<std::pair<std::string, std::string>> wanted;
  for (const auto& p : paths) wanted.emplace_back(fs::path(p).filename().string(), p);
  if (wanted.empty()) {
    wanted = {{"SentencePiece tok512.model", bench_fixtures_dir() + "/stories260K/tok512.model"},
              {"llama2.c tok512.bin", bench_fixtures_dir() + "/stories260K/tok512.bin"},
              {"SmolLM2 byte-level BPE (GGUF)", models_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf"},
              {"LLaMA-3 tiktoken", bench_fixtures_dir() + "/llama3/tokenizer.model"}};
  }
  std::vector<Contender> out;
  for (const auto& [label, path] : wanted) {
    std::error_code ec;
    if (paths.empty() && !fs::exists(path, ec)) {
      std::cerr << "bench tokenize: skipping " << label << ": " << path << " is absent\n";
      continue;
    }
    out.push_back({label, open_tokenizer(path)});
  }
  return out;
}

void print_row(const std::string& label, const Measurement& one, const Measurement& all, size_t bytes) {
  char line[256];
  std::snprintf(line, sizeof line, "%-32s %12.2f %12.2f %10zu %8.2f\n", label.c_str(), one.mb_per_s, all.mb_per_s,
                one.tokens, static_cast<double>(bytes) / std::max<size_t>(1, one.tokens));
  std::cout << line << std::flush;
}

}  // namespace

int run_tokenize_benchmark(const std::vector<std::string>& args) {
  CommandLine cl("bench tokenize", "[--text FILE] [--seconds S] [--threads N] [--tokenizer PATH ...]",
                 {{"text", "FILE", "documents to encode (default $XCOMP_FIXTURES/tinystories/tinystories_sample.txt)"},
                  {"seconds", "S", "minimum time per measurement (default 2)"},
                  {"threads", "N", "threads for the parallel column (default: all cores)"},
                  {"tokenizer", "PATH", "tokenizer file, directory or .gguf; repeatable (default: the four below)"}});
  if (!cl.parse(args)) return 0;
  cl.expect_positional(0, 0);
  const std::string text = cl.get("text", bench_fixtures_dir() + "/tinystories/tinystories_sample.txt");
  const double seconds = cl.get_double("seconds", 2.0, 0.0, 3600.0);
  const int hardware = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = static_cast<int>(cl.get_int("threads", hardware, 1, 1024));

  const Documents docs = read_documents(text);
  const size_t bytes = total_bytes(docs);
  std::vector<Contender> all = contenders(cl.get_all("tokenizer"));
  std::cout << "text " << text << ": " << docs.size() << " documents, " << bytes << " bytes; " << seconds
            << " s per measurement, warm caches\n";
  char header[256];
  std::snprintf(header, sizeof header, "%-32s %12s %12s %10s %8s\n", "tokenizer", "1 thread", "", "tokens", "bytes/");
  std::cout << header;
  std::snprintf(header, sizeof header, "%-32s %12s %9d thr %10s %8s\n", "", "MB/s", threads, "", "token");
  std::cout << header;
  for (const Contender& c : all) {
    encode_pass(*c.tokenizer, docs, 1);  // warm-up: caches, page faults
    Measurement one = measure(*c.tokenizer, docs, 1, seconds);
    Measurement par = measure(*c.tokenizer, docs, threads, seconds);
    if (par.tokens != one.tokens) {
      throw_input_error(c.label, ": ", threads, " threads produced ", par.tokens, " tokens, one thread ", one.tokens);
    }
    print_row(c.label, one, par, bytes);
  }
  return 0;
}

}  // namespace xcomp
