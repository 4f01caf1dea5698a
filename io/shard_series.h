// One split's shards, "<split>-00000.h5", "<split>-00001.h5", ...: a new shard starts
// when the next record would take the current one past `shard_tokens` (a record larger
// than that gets a shard of its own, as records are never cut across shards) and when
// the source file changes, so each shard's source_file attribute is exact.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "io/shards.h"

namespace xcomp {

template <class Writer>
class ShardSeries {
 public:
  ShardSeries(std::string dir, ShardAttributes attributes, int64_t shard_tokens)
      : dir_(std::move(dir)), attributes_(std::move(attributes)), shard_tokens_(shard_tokens) {}

  // Records that follow come from `source_file`.
  void set_source(const std::string& source_file) {
    if (source_file == attributes_.source_file) return;
    close_shard();
    attributes_.source_file = source_file;
  }

  // Adds one record of `tokens` tokens: writer->add(args...).
  template <class... Args>
  void add(int64_t tokens, const Args&... args) {
    if (writer_ && writer_tokens_ > 0 && writer_tokens_ + tokens > shard_tokens_) close_shard();
    if (!writer_) open_shard();
    writer_->add(args...);
    writer_tokens_ += tokens;
    ++records_;
    tokens_ += tokens;
  }

  // Closes the last shard; the series is complete.
  void close() { close_shard(); }

  int64_t records() const { return records_; }
  int64_t tokens() const { return tokens_; }
  const std::vector<std::string>& files() const { return files_; }  // names inside dir

 private:
  void open_shard() {
    char index[32];
    std::snprintf(index, sizeof index, "%05zu", files_.size());
    const std::string name = attributes_.split + "-" + index + ".h5";
    files_.push_back(name);
    writer_ = std::make_unique<Writer>(dir_ + "/" + name, attributes_);
    writer_tokens_ = 0;
  }
  void close_shard() {
    if (!writer_) return;
    writer_->close();
    writer_.reset();
  }

  std::string dir_;
  ShardAttributes attributes_;
  int64_t shard_tokens_;
  std::unique_ptr<Writer> writer_;
  int64_t writer_tokens_ = 0, records_ = 0, tokens_ = 0;
  std::vector<std::string> files_;
};

}  // namespace xcomp
