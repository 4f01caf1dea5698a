#include "trainer/command_line.h"

#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "model/input_error.h"

namespace xcomp {

CommandLine::CommandLine(std::string command, std::string usage, std::vector<OptionSpec> options)
    : command_(std::move(command)), usage_(std::move(usage)), options_(std::move(options)) {}

const OptionSpec* CommandLine::find(const std::string& name) const {
  for (const auto& o : options_)
    if (o.name == name) return &o;
  return nullptr;
}

bool CommandLine::parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << usage();
      return false;
    }
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    const size_t eq = name.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const OptionSpec* spec = find(name);
    if (spec == nullptr) throw_input_error("xcomp ", command_, ": unknown option --", name, "\n", usage());
    if (spec->value_name.empty()) {
      if (inline_value) throw_input_error("xcomp ", command_, ": option --", name, " takes no value");
      value = "1";
    } else if (!inline_value) {
      if (i + 1 >= args.size()) throw_input_error("xcomp ", command_, ": option --", name, " needs a value (", spec->value_name, ")");
      value = args[++i];
    }
    values_[name] = value;
    all_values_[name].push_back(value);
  }
  return true;
}

void CommandLine::expect_positional(size_t min, size_t max) const {
  if (positional_.size() < min || positional_.size() > max)
    throw_input_error("xcomp ", command_, ": expected ", min == max ? std::to_string(min) : std::to_string(min) + " to " + std::to_string(max),
                      " positional argument(s), got ", positional_.size(), "\n", usage());
}

bool CommandLine::has(const std::string& name) const { return values_.count(name) != 0; }

std::string CommandLine::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

std::vector<std::string> CommandLine::get_all(const std::string& name) const {
  auto it = all_values_.find(name);
  return it == all_values_.end() ? std::vector<std::string>{} : it->second;
}

std::string CommandLine::require(const std::string& name) const {
  if (!has(name)) throw_input_error("xcomp ", command_, ": --", name, " is required\n", usage());
  return get(name);
}

int64_t CommandLine::get_int(const std::string& name, int64_t fallback, int64_t min, int64_t max) const {
  if (!has(name)) return fallback;
  const std::string text = get(name);
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || v < min || v > max)
    throw_input_error("xcomp ", command_, ": --", name, " must be an integer in [", min, ", ", max, "], got '", text, "'");
  return v;
}

double CommandLine::get_double(const std::string& name, double fallback, double min, double max) const {
  if (!has(name)) return fallback;
  const std::string text = get(name);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE || !(v >= min && v <= max))
    throw_input_error("xcomp ", command_, ": --", name, " must be a number in [", min, ", ", max, "], got '", text, "'");
  return v;
}

std::string CommandLine::usage() const {
  std::ostringstream out;
  out << "usage: xcomp " << command_ << " " << usage_ << "\n";
  for (const auto& o : options_) {
    std::string left = "--" + o.name + (o.value_name.empty() ? "" : " " + o.value_name);
    out << "  " << left << std::string(left.size() < 28 ? 28 - left.size() : 1, ' ') << o.help << "\n";
  }
  return out.str();
}

}  // namespace xcomp
