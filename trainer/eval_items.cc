#include "trainer/eval_items.h"

#include <cstring>
#include <filesystem>

namespace xcomp {

namespace {

std::string dataset_name(const std::string& source_file, const std::string& shard_path) {
  const std::string from = source_file.empty() ? shard_path : source_file;
  std::string stem = std::filesystem::path(from).filename().string();
  // "train-v1.1.json" -> "train-v1.1", "HotpotQA.jsonl.gz" -> "HotpotQA"
  for (const char* ext : {".gz", ".jsonl", ".json", ".txt", ".h5"})
    if (stem.size() > std::strlen(ext) && stem.compare(stem.size() - std::strlen(ext), std::string::npos, ext) == 0)
      stem.resize(stem.size() - std::strlen(ext));
  return stem;
}

}  // namespace

std::vector<RegenerationItem> read_regeneration_items(const std::vector<std::string>& shards,
                                                      const ShardExpectations& expect, int64_t text_len,
                                                      int64_t limit) {
  std::vector<RegenerationItem> items;
  for (const std::string& path : shards) {
    const CorpusShard shard = CorpusShard::open(path, expect);
    for (int64_t d = 0; d < shard.documents(); ++d) {
      if (limit > 0 && static_cast<int64_t>(items.size()) >= limit) return items;
      if (shard.document_length(d) < text_len) continue;
      const int32_t* data = shard.document_data(d);
      items.push_back({shard.document_id(d), std::vector<int32_t>(data, data + text_len)});
    }
  }
  return items;
}

std::vector<QaItem> read_qa_items(const std::vector<std::string>& shards, const ShardExpectations& expect,
                                  int64_t max_text_len, int64_t limit) {
  std::vector<QaItem> items;
  for (const std::string& path : shards) {
    const QaShard shard = QaShard::open(path, expect);
    const std::string dataset = dataset_name(shard.attributes().source_file, path);
    for (int64_t e = 0; e < shard.examples(); ++e) {
      if (limit > 0 && static_cast<int64_t>(items.size()) >= limit) return items;
      QaExample example = shard.example(e);
      QaItem item;
      item.id = example.id;
      item.dataset = dataset;
      item.truncated = static_cast<int64_t>(example.context.size()) > max_text_len;
      if (item.truncated) example.context.resize(max_text_len);
      item.context = std::move(example.context);
      item.question = std::move(example.question);
      item.references = std::move(example.references);
      if (item.context.empty()) continue;  // nothing to compress
      items.push_back(std::move(item));
    }
  }
  return items;
}

}  // namespace xcomp
