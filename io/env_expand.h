// Environment variables in configuration strings, so one YAML file serves every machine:
//   ${VAR}           the value of VAR; an error when VAR is unset
//   ${VAR:-default}  the value of VAR, or `default` when VAR is unset or empty
//   $$               a literal $
// Any other $ is kept as it is. Names are [A-Za-z_][A-Za-z0-9_]*; a default may itself
// hold references (${A:-${B}/x}), expanded only when the default is used.
#pragma once

#include <string>

namespace xcomp {

struct EnvExpansion {
  std::string value;
  std::string error;  // empty on success, else what is wrong ("XCOMP_DATA is not set ...")
};

EnvExpansion expand_env_vars(const std::string& text);

// The inverse for writing a string back into a configuration: every $ doubled, so that
// expanding the result gives `text` again.
std::string escape_env_vars(const std::string& text);

}  // namespace xcomp
