#include "io/bpe.h"

#include <functional>
#include <queue>

#include "model/input_error.h"

namespace xcomp {
namespace {

// Enough for the pre-tokens of any realistic corpus; cleared wholesale when full so
// memory stays bounded on adversarial input.
constexpr size_t kCacheLimit = 1 << 16;

}  // namespace

BytePairEncoder::BytePairEncoder(std::vector<std::string> token_bytes, int32_t unk_id)
    : token_bytes_(std::move(token_bytes)) {
  ids_.reserve(token_bytes_.size());
  for (size_t id = 0; id < token_bytes_.size(); ++id) {
    if (!token_bytes_[id].empty()) ids_.emplace(token_bytes_[id], static_cast<int32_t>(id));  // first id wins
  }
  for (int b = 0; b < 256; ++b) {
    int32_t id = find(std::string(1, static_cast<char>(b)));
    byte_ids_[b] = id >= 0 ? id : unk_id;
  }
}

int32_t BytePairEncoder::find(const std::string& bytes) const {
  auto it = ids_.find(bytes);
  return it == ids_.end() ? -1 : it->second;
}

void BytePairEncoder::add_merges(const std::vector<std::pair<std::string, std::string>>& merges,
                                 const std::string& source) {
  merges_.reserve(merges_.size() + merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    int32_t left = find(merges[i].first), right = find(merges[i].second);
    int32_t merged = find(merges[i].first + merges[i].second);
    if (left < 0 || right < 0 || merged < 0) {
      throw_input_error(source, ": merge ", i, " joins tokens that are not all in the vocabulary");
    }
    // A repeated pair keeps its first (highest) priority, as Hugging Face does.
    merges_.emplace(pair_key(left, right), Merge{static_cast<int32_t>(i), merged});
  }
  std::lock_guard<std::mutex> lock(cache_mutex_);
  cache_.clear();
}

void BytePairEncoder::add_rank_merges() {
  for (size_t id = 0; id < token_bytes_.size(); ++id) {
    const std::string& bytes = token_bytes_[id];
    for (size_t split = 1; split < bytes.size(); ++split) {
      int32_t left = find(bytes.substr(0, split)), right = find(bytes.substr(split));
      if (left < 0 || right < 0) continue;
      auto key = pair_key(left, right);
      auto it = merges_.find(key);
      // Only the token's first id counts (find() above), so rank == merged id.
      if (it == merges_.end() || it->second.rank > static_cast<int32_t>(id)) {
        merges_[key] = Merge{static_cast<int32_t>(id), static_cast<int32_t>(id)};
      }
    }
  }
  std::lock_guard<std::mutex> lock(cache_mutex_);
  cache_.clear();
}

std::vector<int32_t> BytePairEncoder::encode(const std::string& piece) const {
  if (piece.empty()) return {};
  if (whole_piece_lookup_) {
    int32_t id = find(piece);
    if (id >= 0) return {id};
  }
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(piece);
    if (it != cache_.end()) return it->second;
  }
  std::vector<int32_t> ids = merge_all(piece);
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() >= kCacheLimit) cache_.clear();
  cache_.emplace(piece, ids);
  return ids;
}

// Parts form a doubly linked list over the piece's bytes; a min-heap holds candidate
// merges ordered by (rank, position), so equal ranks merge leftmost first, as both
// Hugging Face and tiktoken do. Entries made stale by an earlier merge are skipped when
// popped (their recorded ids no longer match the list).
std::vector<int32_t> BytePairEncoder::merge_all(const std::string& piece) const {
  std::vector<int32_t> id;
  id.reserve(piece.size());
  for (unsigned char b : piece) {
    if (byte_ids_[b] >= 0) id.push_back(byte_ids_[b]);  // a dropped byte lets its neighbours merge
  }
  const int n = static_cast<int>(id.size());
  if (n == 0) return {};
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }

  struct Candidate {
    int32_t rank;
    int pos;
    int32_t left, right;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto push = [&](int pos) {
    if (pos < 0 || next[pos] < 0) return;
    auto it = merges_.find(pair_key(id[pos], id[next[pos]]));
    if (it != merges_.end()) heap.push({it->second.rank, pos, id[pos], id[next[pos]]});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);

  while (!heap.empty()) {
    Candidate c = heap.top();
    heap.pop();
    int right = next[c.pos];
    if (id[c.pos] != c.left || right < 0 || id[right] != c.right) continue;  // stale
    id[c.pos] = merges_.at(pair_key(c.left, c.right)).merged_id;
    id[right] = -1;  // removed
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }

  std::vector<int32_t> out;
  for (int i = 0; i >= 0; i = next[i]) out.push_back(id[i]);
  return out;
}

}  // namespace xcomp
