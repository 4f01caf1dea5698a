// Spelling suggestions for user-facing names ("unknown key 'trian.steps'; did you mean
// 'train.steps'?"): an edit distance and the nearest plausible candidate.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace xcomp {

// Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of
// two neighbouring characters each count one edit, because "stpes" is one slip of the
// fingers away from "steps", not two.
size_t edit_distance(const std::string& a, const std::string& b);

// True when `distance` edits are few enough for `word` to be a typo of something: at
// most a third of its characters (so a one- or two-letter word must match exactly).
bool plausible_typo(const std::string& word, size_t distance);

// The candidate nearest to `word`, or "" when none is a plausible typo of it. Ties go to
// the earlier candidate, so suggestions are deterministic.
std::string closest_name(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace xcomp
