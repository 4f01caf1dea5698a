// Running a PyTorch reference script beside a benchmark (bench train --reference, bench
// attention --reference): the script's last line of output is one JSON object.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace xcomp {

// s in single quotes for /bin/sh.
std::string shell_quote(const std::string& s);

// Runs `command` through the shell and returns the JSON object on the last non-empty line
// it printed. A failed run or a last line that is no JSON object is an InputError naming
// `script` and carrying the output.
nlohmann::json run_reference_script(const std::string& command, const std::string& script);

}  // namespace xcomp
