#include "trainer/prepare_run.h"

#include <map>
#include <memory>

#include "io/prepare_sources.h"
#include "io/shard_series.h"
#include "trainer/prepare_progress.h"

namespace xcomp {

namespace {

template <class Writer>
using SeriesBySplit = std::map<std::string, std::unique_ptr<ShardSeries<Writer>>>;

template <class Writer>
SeriesBySplit<Writer> open_series(const PrepareJob& job, const char* format) {
  SeriesBySplit<Writer> series;
  for (const std::string& split : job.split->split_names()) {
    ShardAttributes attributes = job.attributes;
    attributes.format = format;
    attributes.split = split;
    series[split] = std::make_unique<ShardSeries<Writer>>(job.shard_dir, attributes, job.shard_tokens);
  }
  return series;
}

template <class Writer>
void close_series(SeriesBySplit<Writer>& series, PrepareReport& report) {
  for (auto& [split, s] : series) {
    s->close();
    SplitCounts& counts = report.splits[split];
    counts.tokens = s->tokens();
    counts.files = s->files();
  }
}

// Cuts tokens to the job's limit; true when it did.
bool truncate(std::vector<int32_t>& tokens, int64_t max_tokens) {
  if (max_tokens <= 0 || static_cast<int64_t>(tokens.size()) <= max_tokens) return false;
  tokens.resize(static_cast<size_t>(max_tokens));
  return true;
}

std::unique_ptr<DocumentSource> open_documents(const PrepareJob& job, const std::string& path) {
  if (job.format == "arxiv") return open_arxiv_source(path, job.with_title);
  if (job.format == "text") return open_text_source(path, job.separator);
  return open_jsonl_source(path, job.text_field, job.id_field);
}

std::unique_ptr<QaSource> open_qa(const PrepareJob& job, const std::string& path) {
  if (job.format == "squad") return open_squad_source(path);
  if (job.format == "mrqa") return open_mrqa_source(path);
  return open_babi_source(path);
}

// Calls source.next(record), counting and skipping malformed records when the job
// allows it; false at the end of the input.
template <class Source, class Record>
bool next_record(Source& source, Record& record, const PrepareJob& job, SkippedRecords& skipped) {
  for (;;) {
    try {
      return source.next(record);
    } catch (const MalformedRecord& e) {
      if (!job.skip_malformed) throw;
      skipped.add(e.what());
    }
  }
}

void prepare_corpus(const PrepareJob& job, PrepareReport& report) {
  auto series = open_series<CorpusShardWriter>(job, kCorpusShardFormat);
  SkippedRecords skipped;
  PrepareProgress progress("documents");
  int64_t documents = 0, tokens = 0, bytes_before = 0;
  for (const std::string& input : job.inputs) {
    for (auto& [split, s] : series) s->set_source(input);
    std::unique_ptr<DocumentSource> source = open_documents(job, input);
    for (SourceDocument doc; next_record(*source, doc, job, skipped);) {
      ++report.records_read;
      const std::string split = job.split->assign(doc.id, doc.date);
      if (split.empty()) {
        ++report.excluded;
        continue;
      }
      std::vector<int32_t> ids = job.tokenizer->encode(doc.text);
      report.truncated += truncate(ids, job.max_doc_tokens);
      series.at(split)->add(static_cast<int64_t>(ids.size()), doc.id, doc.date, ids);
      ++report.splits[split].documents;
      tokens += static_cast<int64_t>(ids.size());
      progress.update(++documents, tokens, bytes_before + source->bytes_consumed());
    }
    report.empty += source->empty_documents();
    bytes_before += source->bytes_consumed();
  }
  progress.finish();
  skipped.finish();
  report.skipped = skipped.count();
  report.records_read += report.skipped + report.empty;
  close_series(series, report);
}

// Context tokens are shared by the questions on one context, so a context is
// tokenised once, not once per question.
class ContextTokens {
 public:
  const std::vector<int32_t>& of(const std::string& context, const Tokenizer& tokenizer) {
    if (!valid_ || context != text_) {
      text_ = context;
      tokens_ = tokenizer.encode(context);
      valid_ = true;
    }
    return tokens_;
  }

 private:
  bool valid_ = false;
  std::string text_;
  std::vector<int32_t> tokens_;
};

QaExample qa_example(const SourceQuestion& q, const std::vector<int32_t>& context, const Tokenizer& tokenizer) {
  QaExample example;
  example.id = q.id;
  example.context = context;
  example.question = tokenizer.encode(q.question);
  if (!q.answers.empty()) example.answer = tokenizer.encode(q.answers.front());
  example.references = q.answers;
  return example;
}

void prepare_qa(const PrepareJob& job, PrepareReport& report) {
  auto series = open_series<QaShardWriter>(job, kQaShardFormat);
  SkippedRecords skipped;
  PrepareProgress progress("questions");
  int64_t questions = 0, tokens = 0, bytes_before = 0;
  for (const std::string& input : job.inputs) {
    for (auto& [split, s] : series) s->set_source(input);
    std::unique_ptr<QaSource> source = open_qa(job, input);
    ContextTokens contexts;
    for (SourceQaGroup group; next_record(*source, group, job, skipped);) {
      ++report.records_read;
      if (group.questions.empty()) {
        ++report.empty;
        continue;
      }
      const std::string split = job.split->assign(group);
      SplitCounts& counts = report.splits[split];
      ++counts.documents;
      for (const SourceQuestion& q : group.questions) {
        QaExample example = qa_example(q, contexts.of(q.context, *job.tokenizer), *job.tokenizer);
        report.truncated += truncate(example.context, job.max_doc_tokens);
        const int64_t n = static_cast<int64_t>(example.context.size() + example.question.size() + example.answer.size());
        series.at(split)->add(n, example);
        ++counts.questions;
        ++report.questions_read;
        report.unanswerable += q.answers.empty();
        tokens += n;
        progress.update(++questions, tokens, bytes_before + source->bytes_consumed());
      }
    }
    bytes_before += source->bytes_consumed();
  }
  progress.finish();
  skipped.finish();
  report.skipped = skipped.count();
  report.records_read += report.skipped;
  close_series(series, report);
}

}  // namespace

bool is_qa_format(const std::string& format) { return format == "squad" || format == "mrqa" || format == "babi"; }

void run_prepare(const PrepareJob& job, PrepareReport& report) {
  report.qa = is_qa_format(job.format);
  for (const std::string& split : job.split->split_names()) report.splits[split];
  if (report.qa)
    prepare_qa(job, report);
  else
    prepare_corpus(job, report);
}

}  // namespace xcomp
