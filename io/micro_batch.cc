#include "io/micro_batch.h"

#include <glog/logging.h>

#include <algorithm>

namespace xcomp {

PaddedTokens pad_sequences(const std::vector<std::vector<int32_t>>& sequences, int32_t pad_id) {
  auto rows = static_cast<int64_t>(sequences.size());
  int64_t width = 1;
  for (const auto& s : sequences) width = std::max(width, static_cast<int64_t>(s.size()));
  PaddedTokens out;
  out.tokens = Tensor::empty({rows, width}, DType::I32);
  out.lengths = Tensor::empty({rows}, DType::I32);
  out.mask = Tensor::zeros({rows, width}, DType::I32);
  int32_t* tokens = out.tokens.data<int32_t>();
  int32_t* mask = out.mask.data<int32_t>();
  for (int64_t b = 0; b < rows; ++b) {
    const std::vector<int32_t>& s = sequences[b];
    auto length = static_cast<int64_t>(s.size());
    std::copy(s.begin(), s.end(), tokens + b * width);
    std::fill(tokens + b * width + length, tokens + (b + 1) * width, pad_id);
    std::fill(mask + b * width, mask + b * width + length, 1);
    out.lengths.data<int32_t>()[b] = static_cast<int32_t>(length);
  }
  return out;
}

namespace {
// The first max_text_len tokens; records in `truncated` whether anything was cut.
std::vector<int32_t> cut_text(const int32_t* data, int64_t length, int64_t max_text_len,
                              std::vector<bool>& truncated) {
  truncated.push_back(length > max_text_len);
  return std::vector<int32_t>(data, data + std::min(length, max_text_len));
}
}  // namespace

MicroBatch make_corpus_micro_batch(const std::vector<CorpusShard>& shards, const std::vector<SampleRef>& samples,
                                   int64_t max_text_len, int32_t pad_id) {
  CHECK_GT(max_text_len, 0);
  MicroBatch batch;
  batch.kind = SampleKind::kCorpus;
  batch.samples = samples;
  std::vector<std::vector<int32_t>> texts;
  for (const SampleRef& ref : samples) {
    CHECK(ref.shard >= 0 && ref.shard < static_cast<int64_t>(shards.size())) << "sample of shard " << ref.shard;
    const CorpusShard& shard = shards[ref.shard];
    texts.push_back(cut_text(shard.document_data(ref.index), shard.document_length(ref.index), max_text_len,
                             batch.truncated));
    batch.ids.push_back(shard.document_id(ref.index));
  }
  batch.text = pad_sequences(texts, pad_id);
  return batch;
}

MicroBatch make_qa_micro_batch(const std::vector<QaShard>& shards, const std::vector<SampleRef>& samples,
                               int64_t max_text_len, int32_t pad_id) {
  CHECK_GT(max_text_len, 0);
  MicroBatch batch;
  batch.kind = SampleKind::kQa;
  batch.samples = samples;
  std::vector<std::vector<int32_t>> contexts, questions, answers;
  for (const SampleRef& ref : samples) {
    CHECK(ref.shard >= 0 && ref.shard < static_cast<int64_t>(shards.size())) << "sample of shard " << ref.shard;
    QaExample example = shards[ref.shard].example(ref.index);
    contexts.push_back(cut_text(example.context.data(), static_cast<int64_t>(example.context.size()), max_text_len,
                                batch.truncated));
    questions.push_back(std::move(example.question));
    answers.push_back(std::move(example.answer));
    batch.ids.push_back(std::move(example.id));
  }
  batch.text = pad_sequences(contexts, pad_id);
  batch.question = pad_sequences(questions, pad_id);
  batch.answer = pad_sequences(answers, pad_id);
  return batch;
}

}  // namespace xcomp
