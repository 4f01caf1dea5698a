// Micro-batches: the samples one rank feeds through the model in one forward/backward,
// as right-padded int32 token matrices with lengths and masks. Built from loaded shards
// by the data loader (io/data_loader.h), or directly (tests, tools).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/sampler.h"
#include "io/shards.h"
#include "model/tensor.h"

namespace xcomp {

enum class SampleKind { kCorpus, kQa };

// Sequences as a block: tokens I32 [B, T] with row b's tokens first and pad_id after
// them, lengths I32 [B], mask I32 [B, T] (1 on real tokens, 0 on padding). T is the
// longest length in the block, at least 1 so that shapes stay valid when every sequence
// is empty (an empty row is all padding, fully masked).
struct PaddedTokens {
  Tensor tokens;
  Tensor lengths;
  Tensor mask;
};
PaddedTokens pad_sequences(const std::vector<std::vector<int32_t>>& sequences, int32_t pad_id);

struct MicroBatch {
  SampleKind kind = SampleKind::kCorpus;
  // Corpus documents or QA contexts, each cut to its first max_text_len tokens.
  PaddedTokens text;
  std::vector<bool> truncated;  // per row: the text was longer than max_text_len
  // QA only (undefined tensors for corpus batches); never truncated.
  PaddedTokens question, answer;
  std::vector<SampleRef> samples;
  std::vector<std::string> ids;  // document ids or question ids
  // The global batch this micro-batch belongs to, and its place among this rank's
  // accumulation steps of that batch.
  SamplerState batch_state;
  int64_t micro_index = 0;
  int64_t micro_count = 1;

  int64_t size() const { return static_cast<int64_t>(samples.size()); }
};

// `shards[s]` must be the shard SampleRef::shard == s refers to.
MicroBatch make_corpus_micro_batch(const std::vector<CorpusShard>& shards, const std::vector<SampleRef>& samples,
                                   int64_t max_text_len, int32_t pad_id);
MicroBatch make_qa_micro_batch(const std::vector<QaShard>& shards, const std::vector<SampleRef>& samples,
                               int64_t max_text_len, int32_t pad_id);

}  // namespace xcomp
