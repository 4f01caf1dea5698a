// How YAML values become typed configuration values, and back. Kept strict: an integer
// key takes 16 or 1e3 (an exact integer) but not 1.5 or "many"; a number key takes any
// finite number; nothing guesses.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

namespace YAML {
class Node;
}

namespace xcomp {

// What a value looks like, for "expected X, got Y" messages: 'kvv', a list, a mapping,
// nothing.
std::string describe_yaml_value(const YAML::Node& value);

// The text of a scalar; nullopt for a list, a mapping or nothing.
std::optional<std::string> yaml_scalar_text(const YAML::Node& value);

std::optional<int64_t> parse_config_integer(const std::string& text);
// Finite numbers only: .inf and .nan are never sensible settings.
std::optional<double> parse_config_number(const std::string& text);

// The shortest decimal text that reads back as exactly `value` ("0.003", "1e-08").
std::string format_config_number(double value);

// A closed or half-open interval with optional ends, described the way messages say it.
struct NumberRange {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_open = false;  // true: min itself is excluded
  bool max_open = false;
  bool contains(double value) const;
  std::string describe() const;  // "> 0", ">= 1", "in [0, 1)"
};

}  // namespace xcomp
