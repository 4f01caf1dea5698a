#include "io/config_values.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace xcomp {

std::string describe_yaml_value(const YAML::Node& value) {
  if (!value.IsDefined() || value.IsNull()) return "nothing";
  if (value.IsSequence()) return "a list";
  if (value.IsMap()) return "a mapping";
  return "'" + value.Scalar() + "'";
}

std::optional<std::string> yaml_scalar_text(const YAML::Node& value) {
  if (!value.IsDefined() || !value.IsScalar()) return std::nullopt;
  return value.Scalar();
}

std::optional<int64_t> parse_config_integer(const std::string& text) {
  if (text.empty()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const long long parsed = std::strtoll(text.c_str(), &end, 10);
  if (errno == 0 && *end == '\0') return static_cast<int64_t>(parsed);
  // 1e5 or 2000.0 name an integer too; 1.5 does not.
  const std::optional<double> number = parse_config_number(text);
  if (!number || std::trunc(*number) != *number || std::fabs(*number) > 9.0e15) return std::nullopt;
  return static_cast<int64_t>(*number);
}

std::optional<double> parse_config_number(const std::string& text) {
  if (text.empty()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const double parsed = std::strtod(text.c_str(), &end);
  if (errno == ERANGE || *end != '\0' || !std::isfinite(parsed)) return std::nullopt;
  return parsed;
}

std::string format_config_number(double value) {
  char buffer[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof buffer, "%.*g", precision, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  return buffer;
}

bool NumberRange::contains(double value) const {
  const bool above = min_open ? value > min : value >= min;
  const bool below = max_open ? value < max : value <= max;
  return above && below;
}

std::string NumberRange::describe() const {
  const bool has_min = std::isfinite(min), has_max = std::isfinite(max);
  if (has_min && has_max)
    return "in " + std::string(min_open ? "(" : "[") + format_config_number(min) + ", " + format_config_number(max) +
           (max_open ? ")" : "]");
  if (has_min) return (min_open ? "> " : ">= ") + format_config_number(min);
  if (has_max) return (max_open ? "< " : "<= ") + format_config_number(max);
  return "(any)";
}

}  // namespace xcomp
