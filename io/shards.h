// HDF5 token shards: the only data the trainer and the evaluator read. `xcomp prepare`
// writes them (io/prepare_*.cc); the sampler and loader read them (io/sampler.h,
// io/data_loader.h).
//
// Corpus shard (format "xcomp-corpus", version 1):
//   /tokens        int32 [n_tokens]      every document's tokens, concatenated (no BOS/EOS);
//                                        chunked, deflate-compressed
//   /doc_offsets   int64 [n_docs + 1]    document d is tokens[doc_offsets[d], doc_offsets[d+1])
//   /doc_ids       string [n_docs]       source ids (arXiv id, "<file>:<n>" for plain text)
//   /doc_dates     string [n_docs]       first-version date YYYY-MM-DD, or "" when unknown
// QA shard (format "xcomp-qa", version 1), one example per question:
//   /context_tokens, /context_offsets    int32 [...], int64 [n + 1]
//   /question_tokens, /question_offsets  int32 [...], int64 [n + 1]
//   /answer_tokens, /answer_offsets      int32 [...], int64 [n + 1]: the training target
//                                        (the first reference answer); empty when unanswerable
//   /question_ids  string [n]
//   /references    string [n_refs]       every reference answer as text, for the evaluator
//   /reference_offsets int64 [n + 1]     example i's references are references[ro[i], ro[i+1])
// Attributes on the root group of both: format, format_version, tokenizer_name,
// tokenizer_sha256, vocab_size, bos_id, eos_id, source_file, split.
//
// Writers write `path + ".tmp"` and rename it when complete, so a shard that exists is
// whole. Written files do not record times, so the same input gives identical bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace xcomp {

inline constexpr const char* kCorpusShardFormat = "xcomp-corpus";
inline constexpr const char* kQaShardFormat = "xcomp-qa";
inline constexpr int64_t kShardFormatVersion = 1;

struct ShardAttributes {
  std::string format;  // "xcomp-corpus" or "xcomp-qa"
  int64_t format_version = 1;
  std::string tokenizer_name;
  std::string tokenizer_sha256;
  int64_t vocab_size = 0;
  int64_t bos_id = -1;
  int64_t eos_id = -1;
  std::string source_file;
  std::string split;
};

struct QaExample {
  std::string id;
  std::vector<int32_t> context, question, answer;
  std::vector<std::string> references;  // text of every reference answer (empty: unanswerable)
};

class CorpusShardWriter {
 public:
  CorpusShardWriter(std::string path, ShardAttributes attributes);
  ~CorpusShardWriter();  // without close(), the temporary file is removed
  void add(const std::string& id, const std::string& date, const std::vector<int32_t>& tokens);
  int64_t documents() const;
  int64_t tokens() const;
  // Writes everything and renames the file into place.
  void close();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

class QaShardWriter {
 public:
  QaShardWriter(std::string path, ShardAttributes attributes);
  ~QaShardWriter();
  void add(const QaExample& example);
  int64_t examples() const;
  int64_t tokens() const;
  void close();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// What a reader checks a shard against; empty/negative fields are not checked. A shard
// whose vocab_size exceeds the expected one is refused (its ids could be out of range).
struct ShardExpectations {
  std::string tokenizer_sha256;
  int64_t vocab_size = -1;
};

// A shard's attributes and sample count (documents or examples), read without loading
// its data: the sampler needs every shard's count before any shard is loaded. Checks the
// format, version, attributes and expectations; open() checks the rest.
struct ShardSummary {
  ShardAttributes attributes;
  int64_t samples = 0;
};
ShardSummary read_shard_summary(const std::string& path, const ShardExpectations& expect = {});

class CorpusShard {
 public:
  // Opens and validates (format, version, offsets monotone and within tokens, every
  // token id < vocab size, the expectations); InputError naming the file and what
  // disagrees.
  static CorpusShard open(const std::string& path, const ShardExpectations& expect = {});
  const std::string& path() const;
  const ShardAttributes& attributes() const;
  int64_t documents() const;
  std::vector<int32_t> document(int64_t index) const;
  const std::string& document_id(int64_t index) const;
  const std::string& document_date(int64_t index) const;
  // The document's tokens without copying them (valid while any copy of the shard lives).
  int64_t document_length(int64_t index) const;
  const int32_t* document_data(int64_t index) const;
  int64_t tokens() const;

 private:
  struct State;
  std::shared_ptr<const State> state_;
};

class QaShard {
 public:
  static QaShard open(const std::string& path, const ShardExpectations& expect = {});
  const std::string& path() const;
  const ShardAttributes& attributes() const;
  int64_t examples() const;
  QaExample example(int64_t index) const;
  int64_t tokens() const;  // context, question and answer tokens together

 private:
  struct State;
  std::shared_ptr<const State> state_;
};

}  // namespace xcomp
