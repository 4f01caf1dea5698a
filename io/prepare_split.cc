#include "io/prepare_split.h"

#include <cmath>

#include "io/line_reader.h"
#include "io/sha256.h"
#include "model/input_error.h"

namespace xcomp {

namespace {

// "2024-01" -> "2024-01-01": the first day, which compares with YYYY-MM-DD dates as text.
std::string month_start(const std::string& month, const char* option) {
  const bool shaped = month.size() == 7 && month[4] == '-' && month.find_first_not_of("0123456789-") == std::string::npos &&
                      month.find('-') == 4 && month.rfind('-') == 4;
  const int m = shaped ? std::stoi(month.substr(5)) : 0;
  if (!shaped || m < 1 || m > 12) throw_input_error("--", option, " is '", month, "', expected a month as YYYY-MM");
  return month + "-01";
}

std::unordered_set<std::string> read_id_list(const std::string& path) {
  std::unordered_set<std::string> ids;
  LineReader lines(path);
  for (std::string line; lines.next(line);) {
    const std::string id = trim_whitespace(line);
    if (!id.empty()) ids.insert(id);
  }
  if (ids.empty()) throw_input_error(path, ": no ids (expected one test id a line)");
  return ids;
}

}  // namespace

SplitPolicy::SplitPolicy(const SplitOptions& options) : options_(options) {
  const std::string& by = options_.by;
  if (by == "none") {
    if (options_.single.empty()) throw_input_error("--split needs a name");
  } else if (by == "date") {
    if (options_.cutoff.empty()) throw_input_error("--split-by date needs --cutoff YYYY-MM");
    train_start_cutoff_ = month_start(options_.cutoff, "cutoff");
    test_from_ = options_.test_from.empty() ? train_start_cutoff_ : month_start(options_.test_from, "test-from");
    if (!options_.test_to.empty()) test_to_ = month_start(options_.test_to, "test-to");
    if (test_from_ < train_start_cutoff_)
      throw_input_error("--test-from ", options_.test_from, " is before --cutoff ", options_.cutoff,
                        ": the test window would overlap the training months");
    if (!test_to_.empty() && test_to_ <= test_from_)
      throw_input_error("--test-to ", options_.test_to, " must be after --test-from (the window is [from, to))");
  } else if (by == "hash") {
    if (!(options_.test_fraction > 0.0 && options_.test_fraction < 1.0))
      throw_input_error("--test-fraction must be in (0, 1) for --split-by hash");
  } else if (by == "ids") {
    if (options_.test_ids_file.empty()) throw_input_error("--split-by ids needs --test-ids FILE");
    test_ids_ = read_id_list(options_.test_ids_file);
  } else {
    throw_input_error("--split-by is '", by, "', expected none, date, hash or ids");
  }
}

std::vector<std::string> SplitPolicy::split_names() const {
  if (options_.by == "none") return {options_.single};
  return {"train", "test"};
}

// The first 8 bytes of SHA-256(key) as a fraction of 2^64: stable across platforms and
// runs (std::hash is neither), and spread evenly whatever the ids look like.
bool SplitPolicy::hashed_to_test(const std::string& key) const {
  const std::string hex = sha256_hex(key);
  const uint64_t h = std::stoull(hex.substr(0, 16), nullptr, 16);
  return std::ldexp(static_cast<double>(h >> 11), -53) < options_.test_fraction;
}

std::string SplitPolicy::assign(const std::string& id, const std::string& date) const {
  const std::string& by = options_.by;
  if (by == "none") return options_.single;
  if (by == "hash") return hashed_to_test(id) ? "test" : "train";
  if (by == "ids") return test_ids_.count(id) ? "test" : "train";
  if (date.empty()) return "";  // undated: no month to judge by
  if (date < train_start_cutoff_) return "train";
  if (date >= test_from_ && (test_to_.empty() || date < test_to_)) return "test";
  return "";
}

std::string SplitPolicy::assign(const SourceQaGroup& group) {
  const std::string& by = options_.by;
  if (by == "date") throw_input_error("--split-by date needs dated documents (--format arxiv); QA formats have no dates");
  if (by != "ids") return assign(group.key, "");
  const std::string key = sha256_hex(group.key);
  auto seen = group_splits_.find(key);
  if (seen != group_splits_.end()) return seen->second;
  bool listed = test_ids_.count(group.key) != 0;
  for (const SourceQuestion& q : group.questions) listed = listed || test_ids_.count(q.id) != 0;
  return group_splits_[key] = listed ? "test" : "train";
}

}  // namespace xcomp
