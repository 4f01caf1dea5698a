// The heart of `xcomp prepare`: read every input, assign each record to its split,
// tokenise it (without BOS/EOS: the trainer adds them) and write the shards.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/prepare_split.h"
#include "io/shards.h"
#include "io/tokenizer.h"
#include "trainer/prepare_report.h"

namespace xcomp {

struct PrepareJob {
  std::string format;  // arxiv | text | jsonl | squad | mrqa | babi
  std::vector<std::string> inputs;
  bool with_title = false;                  // arxiv
  std::string separator = "<|endoftext|>";  // text
  std::string text_field, id_field;         // jsonl
  const Tokenizer* tokenizer = nullptr;
  SplitPolicy* split = nullptr;
  std::string shard_dir;                    // where the shards are written
  ShardAttributes attributes;               // tokenizer fields filled in
  int64_t shard_tokens = 16 << 20;
  int64_t max_doc_tokens = 0;               // 0: no truncation
  bool skip_malformed = false;              // --on-error=skip
};

bool is_qa_format(const std::string& format);

// Fills report's counts and splits. Throws InputError for bad input (MalformedRecord
// unless skip_malformed).
void run_prepare(const PrepareJob& job, PrepareReport& report);

}  // namespace xcomp
