// Parsing one subcommand's arguments: declared options (--name VALUE, --name=VALUE or a
// bare --flag) and positional arguments. Anything undeclared or malformed is an
// InputError naming the option and the command.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace xcomp {

struct OptionSpec {
  std::string name;       // without the leading dashes
  std::string value_name; // empty for a bare flag
  std::string help;
};

class CommandLine {
 public:
  CommandLine(std::string command, std::string usage, std::vector<OptionSpec> options);

  // Parses args (those after the subcommand). Returns false when --help was given (the
  // usage has then been printed to standard output).
  bool parse(const std::vector<std::string>& args);

  const std::vector<std::string>& positional() const { return positional_; }
  // Requires exactly `min..max` positional arguments.
  void expect_positional(size_t min, size_t max) const;

  bool has(const std::string& name) const;
  std::string get(const std::string& name, const std::string& fallback = "") const;
  // Every value a repeatable option was given, in order (get() returns the last one).
  std::vector<std::string> get_all(const std::string& name) const;
  std::string require(const std::string& name) const;
  int64_t get_int(const std::string& name, int64_t fallback, int64_t min, int64_t max) const;
  double get_double(const std::string& name, double fallback, double min, double max) const;

  std::string usage() const;

 private:
  const OptionSpec* find(const std::string& name) const;
  std::string command_, usage_;
  std::vector<OptionSpec> options_;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::string>> all_values_;
  std::vector<std::string> positional_;
};

}  // namespace xcomp
