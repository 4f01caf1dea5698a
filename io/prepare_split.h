// Which split (train or test) a document or a QA context goes to, chosen so that
// nothing can leak between them: every decision depends only on the record itself
// (its date, a hash of its id, or a listed id), never on the order of the input, so a
// document lands in the same split on every run and in exactly one split.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "io/prepare_sources.h"

namespace xcomp {

struct SplitOptions {
  std::string by = "none";      // none | date | hash | ids
  std::string single = "train"; // the one split's name when by == "none"
  // by date: train is before `cutoff`; test is [test_from, test_to) (test_from defaults
  // to the cutoff, test_to to no end). Months as YYYY-MM.
  std::string cutoff, test_from, test_to;
  double test_fraction = 0.1;   // by hash
  std::string test_ids_file;    // by ids: one id a line
};

class SplitPolicy {
 public:
  // Validates the options (and reads the ids file); InputError naming what is wrong.
  explicit SplitPolicy(const SplitOptions& options);

  const std::string& by() const { return options_.by; }
  std::vector<std::string> split_names() const;
  // The split of a document; "" when it falls outside every split (excluded by date).
  std::string assign(const std::string& id, const std::string& date) const;
  // The split of a QA context group. By hash, its key is hashed; by ids, the group is
  // test when any of its question ids (or its key) is listed, and a key seen before
  // keeps its split, so the same context on two input lines never straddles.
  std::string assign(const SourceQaGroup& group);

 private:
  bool hashed_to_test(const std::string& key) const;
  SplitOptions options_;
  std::string train_start_cutoff_, test_from_, test_to_;  // YYYY-MM-01, "" for no bound
  std::unordered_set<std::string> test_ids_;
  std::unordered_map<std::string, std::string> group_splits_;  // by ids: key hash -> split
};

}  // namespace xcomp
