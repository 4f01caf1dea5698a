// Micro-batches for one rank, in the global order of io/sampler.h. Rank r's slice of
// each global batch (micro_batch x accumulation samples) becomes `accumulation`
// micro-batches of `micro_batch` samples, in slice order.
//
// The constructor reads every shard's summary (attributes and sample count) at once, so
// a missing shard, a wrong format or a tokenizer mismatch fails before training starts.
// The shards' data then load on a background thread, which keeps up to `prefetch`
// micro-batches ready so a training step never waits on disk; errors found there (a
// token id past the vocabulary, damaged data) are rethrown by next(). With prefetch 0
// everything happens inside next(), on the caller's thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "io/micro_batch.h"
#include "io/sampler.h"
#include "io/shards.h"

namespace xcomp {

struct DataLoaderOptions {
  std::vector<std::string> shards;  // in a fixed order: the sampler indexes them so
  SampleKind kind = SampleKind::kCorpus;
  ShardExpectations expect;
  uint64_t seed = 0;
  int64_t micro_batch = 1;
  int64_t accumulation = 1;
  int world_size = 1;
  int rank = 0;
  int64_t max_text_len = 480;  // documents (QA: contexts) are cut to this many tokens
  int32_t pad_id = 0;
  int64_t prefetch = 4;  // micro-batches built ahead; 0: build them in next()
  SamplerState start;    // where to begin (a checkpoint's saved state)
};

class DataLoader {
 public:
  // InputError naming the shard for a missing or unreadable shard, one of the other
  // kind, a tokenizer other than expected (or shards disagreeing on it), and for sizes
  // the sampler refuses (see GlobalSampler).
  explicit DataLoader(DataLoaderOptions options);
  // Stops the background thread (waiting for the micro-batch it is building).
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // The next micro-batch; blocks until it is ready. Rethrows what the background thread
  // threw (an InputError for a bad shard), on this and every later call.
  MicroBatch next();
  // The sampler state of the micro-batch next() returns next. Between steps (after the
  // last micro-batch of a global batch) this is what a checkpoint saves; mid-step it is
  // the state of the step in progress, which a resume would repeat from its start.
  SamplerState state() const { return next_state_; }

  int64_t total_samples() const { return next_state_.total_samples; }
  int64_t batches_per_epoch() const { return next_state_.batches_per_epoch(); }

 private:
  class Producer;
  void prefetch_loop();

  DataLoaderOptions options_;
  std::atomic<bool> stop_requested_{false};  // read by the producer between shard loads
  std::unique_ptr<Producer> producer_;
  SamplerState next_state_;

  // The queue between the prefetch thread and next().
  std::mutex mutex_;
  std::condition_variable ready_;  // a batch was queued, or the thread failed
  std::condition_variable space_;  // a batch was taken, or we are stopping
  std::deque<MicroBatch> queue_;
  std::exception_ptr error_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace xcomp
