#include "io/data_loader.h"

#include <glog/logging.h>

#include <atomic>
#include <optional>

#include "model/input_error.h"

namespace xcomp {

namespace {
const char* format_of(SampleKind kind) { return kind == SampleKind::kCorpus ? kCorpusShardFormat : kQaShardFormat; }

// Every shard's sample count, after checking each is of the loader's kind and that all
// were written with one tokenizer (mixing tokenizers would silently mix vocabularies).
std::vector<int64_t> summarize_shards(const DataLoaderOptions& options) {
  if (options.shards.empty()) throw_input_error("data loader: no shards given");
  std::vector<int64_t> counts;
  std::string first_sha256;
  for (const std::string& path : options.shards) {
    ShardSummary summary = read_shard_summary(path, options.expect);
    const ShardAttributes& a = summary.attributes;
    if (a.format != format_of(options.kind)) {
      throw_input_error(path, ": is a '", a.format, "' shard, but this loader reads '", format_of(options.kind),
                        "' shards");
    }
    if (counts.empty()) first_sha256 = a.tokenizer_sha256;
    if (a.tokenizer_sha256 != first_sha256) {
      throw_input_error(path, ": tokenizer_sha256 ", a.tokenizer_sha256, " differs from ", first_sha256, " of ",
                        options.shards.front());
    }
    counts.push_back(summary.samples);
  }
  return counts;
}
}  // namespace

// Builds the micro-batches in order: owns the sampler and the loaded shards. Used by one
// thread at a time (the prefetch thread, or next() when there is none).
class DataLoader::Producer {
 public:
  Producer(const DataLoaderOptions& options, std::vector<int64_t> counts, const std::atomic<bool>& stop)
      : options_(options),
        counts_(counts),
        stop_(stop),
        sampler_(std::move(counts), options.seed, options.micro_batch * options.accumulation * options.world_size,
                 options.world_size, options.rank, options.start),
        next_micro_(options.accumulation) {}

  const GlobalSampler& sampler() const { return sampler_; }

  // The next micro-batch; nothing when the loader stopped while the shards were loading.
  std::optional<MicroBatch> produce() {
    if (!loaded_ && !load_shards()) return std::nullopt;
    if (next_micro_ == options_.accumulation) {
      slice_state_ = sampler_.state();
      slice_ = sampler_.next();
      next_micro_ = 0;
    }
    auto begin = slice_.begin() + next_micro_ * options_.micro_batch;
    std::vector<SampleRef> samples(begin, begin + options_.micro_batch);
    MicroBatch batch = options_.kind == SampleKind::kCorpus
                           ? make_corpus_micro_batch(corpus_, samples, options_.max_text_len, options_.pad_id)
                           : make_qa_micro_batch(qa_, samples, options_.max_text_len, options_.pad_id);
    batch.batch_state = slice_state_;
    batch.micro_index = next_micro_++;
    batch.micro_count = options_.accumulation;
    return batch;
  }

 private:
  // Loads (and fully validates) every shard; false when the loader is being destroyed.
  bool load_shards() {
    for (size_t s = 0; s < options_.shards.size(); ++s) {
      if (stop_) return false;
      const std::string& path = options_.shards[s];
      int64_t count = 0;
      if (options_.kind == SampleKind::kCorpus) {
        corpus_.push_back(CorpusShard::open(path, options_.expect));
        count = corpus_.back().documents();
      } else {
        qa_.push_back(QaShard::open(path, options_.expect));
        count = qa_.back().examples();
      }
      if (count != counts_[s]) {
        throw_input_error(path, ": holds ", count, " samples, but held ", counts_[s],
                          " when the loader started (was it rewritten?)");
      }
    }
    loaded_ = true;
    return true;
  }

  const DataLoaderOptions& options_;
  std::vector<int64_t> counts_;
  const std::atomic<bool>& stop_;
  GlobalSampler sampler_;
  bool loaded_ = false;
  std::vector<CorpusShard> corpus_;
  std::vector<QaShard> qa_;
  std::vector<SampleRef> slice_;  // this rank's slice of the current global batch
  SamplerState slice_state_;
  int64_t next_micro_;  // accumulation: the slice is used up, take the next one
};

DataLoader::DataLoader(DataLoaderOptions options) : options_(std::move(options)) {
  CHECK_GT(options_.micro_batch, 0);
  CHECK_GT(options_.accumulation, 0);
  CHECK_GE(options_.prefetch, 0);
  if (options_.max_text_len <= 0) throw_input_error("max_text_len ", options_.max_text_len, " is not positive");
  producer_ = std::make_unique<Producer>(options_, summarize_shards(options_), stop_requested_);
  next_state_ = producer_->sampler().state();
  if (options_.prefetch > 0) thread_ = std::thread(&DataLoader::prefetch_loop, this);
}

DataLoader::~DataLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  stop_requested_ = true;
  space_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void DataLoader::prefetch_loop() {
  try {
    while (true) {
      std::optional<MicroBatch> batch = producer_->produce();
      if (!batch) return;
      std::unique_lock<std::mutex> lock(mutex_);
      space_.wait(lock, [&] { return stopping_ || static_cast<int64_t>(queue_.size()) < options_.prefetch; });
      if (stopping_) return;
      queue_.push_back(std::move(*batch));
      ready_.notify_one();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::current_exception();
    ready_.notify_all();
  }
}

MicroBatch DataLoader::next() {
  MicroBatch batch;
  if (options_.prefetch == 0) {
    if (error_) std::rethrow_exception(error_);
    try {
      std::optional<MicroBatch> produced = producer_->produce();
      CHECK(produced.has_value()) << "the producer stopped while its loader is in use";
      batch = std::move(*produced);
    } catch (...) {
      error_ = std::current_exception();  // the producer is half-way through; never reuse it
      throw;
    }
  } else {
    std::unique_lock<std::mutex> lock(mutex_);
    // Batches built before a failure are still delivered, in order; then the error.
    ready_.wait(lock, [&] { return !queue_.empty() || error_; });
    if (queue_.empty()) std::rethrow_exception(error_);
    batch = std::move(queue_.front());
    queue_.pop_front();
    space_.notify_one();
  }
  next_state_ = batch.micro_index + 1 < batch.micro_count ? batch.batch_state : batch.batch_state.following();
  return batch;
}


}  // namespace xcomp
