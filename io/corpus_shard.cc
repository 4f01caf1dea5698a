// Corpus shards (format "xcomp-corpus"): the writer and the validating reader.
#include <glog/logging.h>

#include "io/hdf5_file.h"
#include "io/shard_parts.h"
#include "io/shards.h"
#include "model/input_error.h"

namespace xcomp {

// --- writer ---------------------------------------------------------------------------

struct CorpusShardWriter::State {
  ShardAttributes attributes;
  Hdf5OutputFile file;  // created up front: an unwritable path fails before any work
  RaggedTokens documents;
  std::vector<std::string> ids, dates;
  bool closed = false;

  State(std::string path, ShardAttributes a) : attributes(std::move(a)), file(std::move(path)) {}
};

CorpusShardWriter::CorpusShardWriter(std::string path, ShardAttributes attributes)
    : state_(std::make_unique<State>(std::move(path), writer_attributes(std::move(attributes), kCorpusShardFormat))) {}

CorpusShardWriter::~CorpusShardWriter() = default;

void CorpusShardWriter::add(const std::string& id, const std::string& date, const std::vector<int32_t>& tokens) {
  CHECK(!state_->closed) << state_->file.path() << ": add() after close()";
  check_writer_tokens(tokens, state_->attributes.vocab_size, state_->file.path());
  state_->documents.append(tokens);
  state_->ids.push_back(id);
  state_->dates.push_back(date);
}

int64_t CorpusShardWriter::documents() const { return state_->documents.sequences(); }
int64_t CorpusShardWriter::tokens() const { return static_cast<int64_t>(state_->documents.tokens.size()); }

void CorpusShardWriter::close() {
  CHECK(!state_->closed) << state_->file.path() << ": closed twice";
  Hdf5OutputFile& file = state_->file;
  write_shard_attributes(file, state_->attributes);
  write_ragged_tokens(file, "tokens", "doc_offsets", state_->documents);
  file.write_string_dataset("doc_ids", state_->ids);
  file.write_string_dataset("doc_dates", state_->dates);
  file.commit();
  state_->closed = true;
}

// --- reader ---------------------------------------------------------------------------

struct CorpusShard::State {
  std::string path;
  ShardAttributes attributes;
  RaggedTokens documents;
  std::vector<std::string> ids, dates;
};

CorpusShard CorpusShard::open(const std::string& path, const ShardExpectations& expect) {
  Hdf5InputFile file(path);
  auto state = std::make_shared<State>();
  state->path = path;
  state->attributes = read_shard_attributes(file, kCorpusShardFormat, expect);
  state->documents = read_ragged_tokens(file, "tokens", "doc_offsets", -1, state->attributes.vocab_size);
  int64_t n = state->documents.sequences();
  state->ids = file.read_string_dataset("doc_ids");
  state->dates = file.read_string_dataset("doc_dates");
  if (static_cast<int64_t>(state->ids.size()) != n) {
    throw_input_error(path, ": dataset 'doc_ids' has ", state->ids.size(), " entries for ", n, " documents");
  }
  if (static_cast<int64_t>(state->dates.size()) != n) {
    throw_input_error(path, ": dataset 'doc_dates' has ", state->dates.size(), " entries for ", n, " documents");
  }
  CorpusShard shard;
  shard.state_ = std::move(state);
  return shard;
}

const std::string& CorpusShard::path() const { return state_->path; }
const ShardAttributes& CorpusShard::attributes() const { return state_->attributes; }
int64_t CorpusShard::documents() const { return state_->documents.sequences(); }
int64_t CorpusShard::tokens() const { return static_cast<int64_t>(state_->documents.tokens.size()); }

std::vector<int32_t> CorpusShard::document(int64_t index) const {
  check_sample_index(index, documents(), state_->path);
  return state_->documents.sequence(index);
}

const std::string& CorpusShard::document_id(int64_t index) const {
  check_sample_index(index, documents(), state_->path);
  return state_->ids[index];
}

const std::string& CorpusShard::document_date(int64_t index) const {
  check_sample_index(index, documents(), state_->path);
  return state_->dates[index];
}

int64_t CorpusShard::document_length(int64_t index) const {
  check_sample_index(index, documents(), state_->path);
  return state_->documents.length(index);
}

const int32_t* CorpusShard::document_data(int64_t index) const {
  check_sample_index(index, documents(), state_->path);
  return state_->documents.data(index);
}

}  // namespace xcomp
