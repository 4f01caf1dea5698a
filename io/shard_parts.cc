#include "io/shard_parts.h"

#include <glog/logging.h>

#include <algorithm>
#include <limits>

#include "model/input_error.h"

namespace xcomp {

ShardAttributes writer_attributes(ShardAttributes a, const char* format) {
  CHECK(a.format.empty() || a.format == format) << "a " << format << " writer given format '" << a.format << "'";
  CHECK_GT(a.vocab_size, 0) << "shard attributes need the tokenizer's vocab_size";
  a.format = format;
  a.format_version = kShardFormatVersion;
  return a;
}

void write_shard_attributes(Hdf5OutputFile& file, const ShardAttributes& a) {
  file.write_string_attribute("format", a.format);
  file.write_int_attribute("format_version", a.format_version);
  file.write_string_attribute("tokenizer_name", a.tokenizer_name);
  file.write_string_attribute("tokenizer_sha256", a.tokenizer_sha256);
  file.write_int_attribute("vocab_size", a.vocab_size);
  file.write_int_attribute("bos_id", a.bos_id);
  file.write_int_attribute("eos_id", a.eos_id);
  file.write_string_attribute("source_file", a.source_file);
  file.write_string_attribute("split", a.split);
}

namespace {
void check_expectations(const std::string& path, const ShardAttributes& a, const ShardExpectations& expect) {
  if (!expect.tokenizer_sha256.empty() && a.tokenizer_sha256 != expect.tokenizer_sha256) {
    throw_input_error(path, ": written with tokenizer '", a.tokenizer_name, "' (tokenizer_sha256 ",
                      a.tokenizer_sha256, "), but the model's tokenizer has sha256 ", expect.tokenizer_sha256,
                      "; prepare the data again with the model's tokenizer");
  }
  if (expect.vocab_size >= 0 && a.vocab_size > expect.vocab_size) {
    throw_input_error(path, ": vocab_size ", a.vocab_size, " is larger than the model's vocabulary (",
                      expect.vocab_size, ")");
  }
}

// A special id is either absent (-1) or a token of the vocabulary.
void check_special_id(const std::string& path, const char* name, int64_t id, int64_t vocab_size) {
  if (id < -1 || id >= vocab_size) {
    throw_input_error(path, ": attribute '", name, "' is ", id, ", expected -1 or an id in [0, ", vocab_size, ")");
  }
}
}  // namespace

ShardAttributes read_shard_attributes(const Hdf5InputFile& file, const std::string& expected_format,
                                      const ShardExpectations& expect) {
  const std::string& path = file.path();
  ShardAttributes a;
  a.format = file.read_string_attribute("format");
  if (a.format != expected_format) {
    throw_input_error(path, ": attribute 'format' is '", a.format, "', expected '", expected_format, "'");
  }
  a.format_version = file.read_int_attribute("format_version");
  if (a.format_version != kShardFormatVersion) {
    throw_input_error(path, ": format_version ", a.format_version, " of ", a.format, ", this build reads version ",
                      kShardFormatVersion);
  }
  a.tokenizer_name = file.read_string_attribute("tokenizer_name");
  a.tokenizer_sha256 = file.read_string_attribute("tokenizer_sha256");
  a.vocab_size = file.read_int_attribute("vocab_size");
  // Token ids are int32, so the vocabulary must fit in one.
  if (a.vocab_size <= 0 || a.vocab_size >= std::numeric_limits<int32_t>::max()) {
    throw_input_error(path, ": attribute 'vocab_size' is ", a.vocab_size, ", expected a positive int32");
  }
  a.bos_id = file.read_int_attribute("bos_id");
  a.eos_id = file.read_int_attribute("eos_id");
  check_special_id(path, "bos_id", a.bos_id, a.vocab_size);
  check_special_id(path, "eos_id", a.eos_id, a.vocab_size);
  a.source_file = file.read_string_attribute("source_file");
  a.split = file.read_string_attribute("split");
  check_expectations(path, a, expect);
  return a;
}

void RaggedTokens::append(const std::vector<int32_t>& sequence) {
  tokens.insert(tokens.end(), sequence.begin(), sequence.end());
  offsets.push_back(static_cast<int64_t>(tokens.size()));
}

void write_ragged_tokens(Hdf5OutputFile& file, const std::string& tokens_name, const std::string& offsets_name,
                         const RaggedTokens& ragged) {
  file.write_int32_dataset(tokens_name, ragged.tokens);
  file.write_int64_dataset(offsets_name, ragged.offsets);
}

void check_offsets(const std::string& path, const std::string& offsets_name, const std::vector<int64_t>& offsets,
                   int64_t expected_sequences, int64_t total, const std::string& total_name) {
  int64_t count = static_cast<int64_t>(offsets.size());
  if (count == 0) throw_input_error(path, ": dataset '", offsets_name, "' is empty, expected at least one offset (0)");
  if (expected_sequences >= 0 && count != expected_sequences + 1) {
    throw_input_error(path, ": dataset '", offsets_name, "' has ", count, " entries, expected ",
                      expected_sequences + 1);
  }
  if (offsets[0] != 0) throw_input_error(path, ": dataset '", offsets_name, "' starts at ", offsets[0], ", not 0");
  for (int64_t i = 1; i < count; ++i) {
    if (offsets[i] < offsets[i - 1]) {
      throw_input_error(path, ": dataset '", offsets_name, "' decreases at entry ", i, " (", offsets[i - 1], " then ",
                        offsets[i], "); offsets must be monotone");
    }
  }
  if (offsets.back() != total) {
    throw_input_error(path, ": dataset '", offsets_name, "' ends at ", offsets.back(), ", but '", total_name,
                      "' has ", total, " entries");
  }
}

RaggedTokens read_ragged_tokens(const Hdf5InputFile& file, const std::string& tokens_name,
                                const std::string& offsets_name, int64_t expected_sequences, int64_t vocab_size) {
  RaggedTokens ragged;
  ragged.offsets = file.read_int64_dataset(offsets_name);
  ragged.tokens = file.read_int32_dataset(tokens_name);
  check_offsets(file.path(), offsets_name, ragged.offsets, expected_sequences,
                static_cast<int64_t>(ragged.tokens.size()), tokens_name);
  for (size_t i = 0; i < ragged.tokens.size(); ++i) {
    int32_t id = ragged.tokens[i];
    if (id < 0 || id >= vocab_size) {
      // Name the sequence too: "<file>:<n>" ids in the shard lead back to the source line.
      int64_t sequence = std::upper_bound(ragged.offsets.begin(), ragged.offsets.end(), static_cast<int64_t>(i)) -
                         ragged.offsets.begin() - 1;
      throw_input_error(file.path(), ": dataset '", tokens_name, "' entry ", i, " (sequence ", sequence,
                        ") is token id ", id, ", outside the vocabulary [0, ", vocab_size, ")");
    }
  }
  return ragged;
}

void check_writer_tokens(const std::vector<int32_t>& tokens, int64_t vocab_size, const std::string& path) {
  for (int32_t id : tokens) {
    CHECK(id >= 0 && id < vocab_size) << path << ": token id " << id << " outside the vocabulary [0, " << vocab_size
                                      << ")";
  }
}

void check_sample_index(int64_t index, int64_t count, const std::string& path) {
  CHECK(index >= 0 && index < count) << path << ": sample " << index << " outside [0, " << count << ")";
}

}  // namespace xcomp
