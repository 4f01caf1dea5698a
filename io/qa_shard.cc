// QA shards (format "xcomp-qa"): the writer and the validating reader.
#include <glog/logging.h>

#include "io/hdf5_file.h"
#include "io/shard_parts.h"
#include "io/shards.h"
#include "model/input_error.h"

namespace xcomp {

// --- writer ---------------------------------------------------------------------------

struct QaShardWriter::State {
  ShardAttributes attributes;
  Hdf5OutputFile file;  // created up front: an unwritable path fails before any work
  RaggedTokens contexts, questions, answers;
  std::vector<std::string> ids, references;
  std::vector<int64_t> reference_offsets{0};
  bool closed = false;

  State(std::string path, ShardAttributes a) : attributes(std::move(a)), file(std::move(path)) {}
};

QaShardWriter::QaShardWriter(std::string path, ShardAttributes attributes)
    : state_(std::make_unique<State>(std::move(path), writer_attributes(std::move(attributes), kQaShardFormat))) {}

QaShardWriter::~QaShardWriter() = default;

void QaShardWriter::add(const QaExample& example) {
  State& s = *state_;
  CHECK(!s.closed) << s.file.path() << ": add() after close()";
  for (const auto* tokens : {&example.context, &example.question, &example.answer}) {
    check_writer_tokens(*tokens, s.attributes.vocab_size, s.file.path());
  }
  s.contexts.append(example.context);
  s.questions.append(example.question);
  s.answers.append(example.answer);
  s.ids.push_back(example.id);
  s.references.insert(s.references.end(), example.references.begin(), example.references.end());
  s.reference_offsets.push_back(static_cast<int64_t>(s.references.size()));
}

int64_t QaShardWriter::examples() const { return state_->contexts.sequences(); }

int64_t QaShardWriter::tokens() const {
  const State& s = *state_;
  return static_cast<int64_t>(s.contexts.tokens.size() + s.questions.tokens.size() + s.answers.tokens.size());
}

void QaShardWriter::close() {
  State& s = *state_;
  CHECK(!s.closed) << s.file.path() << ": closed twice";
  write_shard_attributes(s.file, s.attributes);
  write_ragged_tokens(s.file, "context_tokens", "context_offsets", s.contexts);
  write_ragged_tokens(s.file, "question_tokens", "question_offsets", s.questions);
  write_ragged_tokens(s.file, "answer_tokens", "answer_offsets", s.answers);
  s.file.write_string_dataset("question_ids", s.ids);
  s.file.write_string_dataset("references", s.references);
  s.file.write_int64_dataset("reference_offsets", s.reference_offsets);
  s.file.commit();
  s.closed = true;
}

// --- reader ---------------------------------------------------------------------------

struct QaShard::State {
  std::string path;
  ShardAttributes attributes;
  RaggedTokens contexts, questions, answers;
  std::vector<std::string> ids, references;
  std::vector<int64_t> reference_offsets;
};

QaShard QaShard::open(const std::string& path, const ShardExpectations& expect) {
  Hdf5InputFile file(path);
  auto s = std::make_shared<State>();
  s->path = path;
  s->attributes = read_shard_attributes(file, kQaShardFormat, expect);
  int64_t vocab = s->attributes.vocab_size;
  s->contexts = read_ragged_tokens(file, "context_tokens", "context_offsets", -1, vocab);
  int64_t n = s->contexts.sequences();
  s->questions = read_ragged_tokens(file, "question_tokens", "question_offsets", n, vocab);
  s->answers = read_ragged_tokens(file, "answer_tokens", "answer_offsets", n, vocab);
  s->ids = file.read_string_dataset("question_ids");
  if (static_cast<int64_t>(s->ids.size()) != n) {
    throw_input_error(path, ": dataset 'question_ids' has ", s->ids.size(), " entries for ", n, " examples");
  }
  s->references = file.read_string_dataset("references");
  s->reference_offsets = file.read_int64_dataset("reference_offsets");
  check_offsets(path, "reference_offsets", s->reference_offsets, n, static_cast<int64_t>(s->references.size()),
                "references");
  QaShard shard;
  shard.state_ = std::move(s);
  return shard;
}

const std::string& QaShard::path() const { return state_->path; }
const ShardAttributes& QaShard::attributes() const { return state_->attributes; }
int64_t QaShard::examples() const { return state_->contexts.sequences(); }

int64_t QaShard::tokens() const {
  const State& s = *state_;
  return static_cast<int64_t>(s.contexts.tokens.size() + s.questions.tokens.size() + s.answers.tokens.size());
}

QaExample QaShard::example(int64_t index) const {
  const State& s = *state_;
  check_sample_index(index, examples(), s.path);
  QaExample e;
  e.id = s.ids[index];
  e.context = s.contexts.sequence(index);
  e.question = s.questions.sequence(index);
  e.answer = s.answers.sequence(index);
  e.references.assign(s.references.begin() + s.reference_offsets[index],
                      s.references.begin() + s.reference_offsets[index + 1]);
  return e;
}

}  // namespace xcomp
