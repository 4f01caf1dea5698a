// What the corpus and QA shard formats (io/shards.h) share: the root-group attributes,
// and ragged token arrays (concatenated tokens plus offsets) with their validation.
// Internal to io/corpus_shard.cc, io/qa_shard.cc and io/shard_summary.cc.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/hdf5_file.h"
#include "io/shards.h"

namespace xcomp {

// The attributes a writer records: the caller's, with the format name and version set
// (CHECKs that the caller did not ask for another format, and gave a vocabulary size).
ShardAttributes writer_attributes(ShardAttributes attributes, const char* format);

void write_shard_attributes(Hdf5OutputFile& file, const ShardAttributes& attributes);

// Reads every attribute (InputError when one is missing or of the wrong type) and checks
// the format name, version and expectations: the first thing a reader does, so a shard
// for another tokenizer is refused before its data is read.
ShardAttributes read_shard_attributes(const Hdf5InputFile& file, const std::string& expected_format,
                                      const ShardExpectations& expect);

// Sequences stored as one token array plus offsets: sequence i is
// tokens[offsets[i], offsets[i + 1]).
struct RaggedTokens {
  std::vector<int32_t> tokens;
  std::vector<int64_t> offsets{0};

  int64_t sequences() const { return static_cast<int64_t>(offsets.size()) - 1; }
  int64_t length(int64_t i) const { return offsets[i + 1] - offsets[i]; }
  const int32_t* data(int64_t i) const { return tokens.data() + offsets[i]; }
  std::vector<int32_t> sequence(int64_t i) const { return {data(i), data(i) + length(i)}; }
  void append(const std::vector<int32_t>& sequence);
};

void write_ragged_tokens(Hdf5OutputFile& file, const std::string& tokens_name, const std::string& offsets_name,
                         const RaggedTokens& ragged);

// Reads and validates: `expected_sequences` + 1 offsets (negative: any count), starting
// at 0, never decreasing, ending at the token count; every token id in [0, vocab_size).
RaggedTokens read_ragged_tokens(const Hdf5InputFile& file, const std::string& tokens_name,
                                const std::string& offsets_name, int64_t expected_sequences, int64_t vocab_size);

// The offsets check on its own (QA references index strings, not tokens).
void check_offsets(const std::string& path, const std::string& offsets_name, const std::vector<int64_t>& offsets,
                   int64_t expected_sequences, int64_t total, const std::string& total_name);

// CHECKs that every id of a sequence handed to a writer is in [0, vocab_size): the ids
// come from our tokenizer, so one outside is a bug, not bad input.
void check_writer_tokens(const std::vector<int32_t>& tokens, int64_t vocab_size, const std::string& path);

// CHECKs a document/example index: callers (the sampler) only ask for samples that exist.
void check_sample_index(int64_t index, int64_t count, const std::string& path);

}  // namespace xcomp
