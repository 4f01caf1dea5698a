#include "io/bpe.h"

#include <glog/logging.h>

#include <climits>
#include <cstring>
#include <functional>
#include <queue>

#include "model/input_error.h"

namespace xcomp {
namespace {

// Pieces up to this many bytes merge by rescanning a small array, as tiktoken does:
// fastest for the short pieces natural text is made of. Longer ones use a heap.
constexpr size_t kShortPiece = 64;
constexpr BytePairEncoder::Merge kNoMerge{INT32_MAX, -1};
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
// Tokens in the small lookup table: 32k slots of 16 bytes stay in a core's L2 cache.
constexpr size_t kHotTokens = 16384;

// The first 8 bytes of s, zero-padded, as one word.
uint64_t head_word(std::string_view s) {
  uint64_t w = 0;
  std::memcpy(&w, s.data(), std::min<size_t>(8, s.size()));
  return w;
}

// A fast, well-mixed hash for short byte strings (tokens and pre-tokens).
uint64_t hash_bytes(std::string_view s) {
  uint64_t h = kGolden ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0xFF51AFD7ED558CCDull;
    h ^= h >> 32;
  }
  uint64_t w = 0;
  std::memcpy(&w, s.data() + i, s.size() - i);
  h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
  return h ^ (h >> 29);
}

size_t power_of_two_at_least(size_t n) {
  size_t size = 1024;
  while (size < n) size *= 2;
  return size;
}

}  // namespace

BytePairEncoder::BytePairEncoder(std::vector<std::string> token_bytes, int32_t unk_id)
    : token_bytes_(std::move(token_bytes)) {
  build_id_table(ids_, token_bytes_.size());
  build_id_table(hot_ids_, std::min(kHotTokens, token_bytes_.size()));
  for (int b = 0; b < 256; ++b) {
    const char byte = static_cast<char>(b);
    int32_t id = find(std::string_view(&byte, 1));
    byte_ids_[b] = id >= 0 ? id : unk_id;
  }
}

// Ids 0..token_count-1, in order, so a byte string repeated in the vocabulary keeps its
// first id.
void BytePairEncoder::build_id_table(IdTable& table, size_t token_count) {
  const size_t size = power_of_two_at_least(2 * token_count);
  table.slots.assign(size, IdSlot{0, 0, -1});
  table.shift = 64 - __builtin_ctzll(size);
  const size_t mask = size - 1;
  for (size_t id = 0; id < token_count; ++id) {
    std::string_view bytes = token_bytes_[id];
    if (bytes.empty() || find_in(table, bytes, hash_bytes(bytes), head_word(bytes)) >= 0) continue;
    size_t i = hash_bytes(bytes) >> table.shift;
    while (table.slots[i].length != 0) i = (i + 1) & mask;
    table.slots[i] = {head_word(bytes), static_cast<uint32_t>(bytes.size()), static_cast<int32_t>(id)};
  }
}

int32_t BytePairEncoder::find_in(const IdTable& table, std::string_view bytes, uint64_t hash, uint64_t head) const {
  const size_t mask = table.slots.size() - 1;
  for (size_t i = hash >> table.shift;; i = (i + 1) & mask) {
    const IdSlot& s = table.slots[i];
    if (s.length == 0) return -1;
    if (s.length == bytes.size() && s.head == head &&
        (bytes.size() <= 8 || std::string_view(token_bytes_[s.id]).substr(8) == bytes.substr(8))) {
      return s.id;
    }
  }
}

int32_t BytePairEncoder::find(std::string_view bytes) const {
  if (bytes.empty()) return -1;
  const uint64_t hash = hash_bytes(bytes), head = head_word(bytes);
  int32_t id = find_in(hot_ids_, bytes, hash, head);
  return id >= 0 ? id : find_in(ids_, bytes, hash, head);
}

// --- the merge table -----------------------------------------------------------------

void BytePairEncoder::grow_merges() {
  std::vector<MergeSlot> old = std::move(merge_slots_);
  const size_t size = std::max<size_t>(1024, old.size() * 2);
  merge_slots_.assign(size, MergeSlot{kEmpty, kNoMerge});
  merge_shift_ = 64 - __builtin_ctzll(size);
  merge_count_ = 0;
  for (const MergeSlot& s : old) {
    if (s.key == kEmpty) continue;
    insert_merge(static_cast<int32_t>(s.key >> 32), static_cast<int32_t>(s.key & 0xFFFFFFFFu), s.merge,
                 [](const Merge&) { return false; });
  }
}

template <class Replace>
void BytePairEncoder::insert_merge(int32_t left, int32_t right, Merge merge, Replace replace) {
  if ((merge_count_ + 1) * 2 > merge_slots_.size()) grow_merges();
  const uint64_t key = pair_key(left, right);
  const size_t mask = merge_slots_.size() - 1;
  for (size_t i = (key * kGolden) >> merge_shift_;; i = (i + 1) & mask) {
    MergeSlot& s = merge_slots_[i];
    if (s.key == kEmpty) {
      s = {key, merge};
      ++merge_count_;
      return;
    }
    if (s.key == key) {
      if (replace(s.merge)) s.merge = merge;
      return;
    }
  }
}

const BytePairEncoder::Merge* BytePairEncoder::find_merge(int32_t left, int32_t right) const {
  if (merge_slots_.empty()) return nullptr;
  const uint64_t key = pair_key(left, right);
  const size_t mask = merge_slots_.size() - 1;
  for (size_t i = (key * kGolden) >> merge_shift_;; i = (i + 1) & mask) {
    const MergeSlot& s = merge_slots_[i];
    if (s.key == key) return &s.merge;
    if (s.key == kEmpty) return nullptr;
  }
}

void BytePairEncoder::add_merges(const std::vector<std::pair<std::string, std::string>>& merges,
                                 const std::string& source) {
  for (size_t i = 0; i < merges.size(); ++i) {
    int32_t left = find(merges[i].first), right = find(merges[i].second);
    int32_t merged = find(merges[i].first + merges[i].second);
    if (left < 0 || right < 0 || merged < 0) {
      throw_input_error(source, ": merge ", i, " joins tokens that are not all in the vocabulary");
    }
    // A repeated pair keeps its first (highest) priority, as Hugging Face does.
    insert_merge(left, right, Merge{static_cast<int32_t>(i), merged}, [](const Merge&) { return false; });
  }
}

void BytePairEncoder::add_rank_merges() {
  for (size_t id = 0; id < token_bytes_.size(); ++id) {
    std::string_view bytes = token_bytes_[id];
    const auto rank = static_cast<int32_t>(id);
    for (size_t split = 1; split < bytes.size(); ++split) {
      int32_t left = find(bytes.substr(0, split)), right = find(bytes.substr(split));
      if (left < 0 || right < 0) continue;
      // Only the token's first id counts (find() above), so rank == merged id.
      insert_merge(left, right, Merge{rank, rank}, [&](const Merge& old) { return old.rank > rank; });
    }
  }
}

// --- encoding --------------------------------------------------------------------------

std::vector<int32_t> BytePairEncoder::encode(std::string_view piece) const {
  std::vector<int32_t> ids;
  encode(piece, ids);
  return ids;
}

void BytePairEncoder::encode(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  if (whole_piece_lookup_) {
    int32_t id = find(piece);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  if (piece.size() <= kShortPiece) {
    merge_short(piece, out);
  } else {
    merge_long(piece, out);
  }
}

// Repeatedly merges the pair with the lowest rank, leftmost on ties (strict <), as both
// tiktoken and Hugging Face do. merge[i] is the candidate for parts i and i+1.
void BytePairEncoder::merge_short(std::string_view piece, std::vector<int32_t>& out) const {
  int32_t id[kShortPiece];
  Merge merge[kShortPiece];
  int n = 0;
  for (unsigned char b : piece) {
    if (byte_ids_[b] >= 0) id[n++] = byte_ids_[b];  // a dropped byte lets its neighbours merge
  }
  auto candidate = [&](int i) {
    const Merge* m = find_merge(id[i], id[i + 1]);
    return m ? *m : kNoMerge;
  };
  for (int i = 0; i + 1 < n; ++i) merge[i] = candidate(i);
  while (n > 1) {
    int best = 0;
    for (int i = 1; i + 1 < n; ++i) {
      if (merge[i].rank < merge[best].rank) best = i;
    }
    if (merge[best].rank == INT32_MAX) break;
    id[best] = merge[best].merged_id;
    // Part best+1 is gone: shift the parts after it, and the candidates after its own.
    std::memmove(id + best + 1, id + best + 2, sizeof(int32_t) * (n - best - 2));
    if (n - best - 3 > 0) std::memmove(merge + best + 1, merge + best + 2, sizeof(Merge) * (n - best - 3));
    --n;
    if (best + 1 < n) merge[best] = candidate(best);
    if (best > 0) merge[best - 1] = candidate(best - 1);
  }
  out.insert(out.end(), id, id + n);
}

// Parts form a doubly linked list over the piece's bytes; a min-heap holds candidate
// merges ordered by (rank, position), so equal ranks merge leftmost first. Entries made
// stale by an earlier merge are skipped when popped (their recorded ids no longer match).
void BytePairEncoder::merge_long(std::string_view piece, std::vector<int32_t>& out) const {
  std::vector<int32_t> id;
  id.reserve(piece.size());
  for (unsigned char b : piece) {
    if (byte_ids_[b] >= 0) id.push_back(byte_ids_[b]);
  }
  const int n = static_cast<int>(id.size());
  if (n == 0) return;
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }

  struct Candidate {
    int32_t rank;
    int pos;
    int32_t left, right, merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto push = [&](int pos) {
    if (pos < 0 || next[pos] < 0) return;
    if (const Merge* m = find_merge(id[pos], id[next[pos]])) heap.push({m->rank, pos, id[pos], id[next[pos]], m->merged_id});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);

  while (!heap.empty()) {
    Candidate c = heap.top();
    heap.pop();
    int right = next[c.pos];
    if (id[c.pos] != c.left || right < 0 || id[right] != c.right) continue;  // stale
    id[c.pos] = c.merged;
    id[right] = -1;  // removed
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  for (int i = 0; i >= 0; i = next[i]) out.push_back(id[i]);
}

}  // namespace xcomp
