#include "trainer/reference_script.h"

#include <array>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "model/input_error.h"

namespace xcomp {

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

nlohmann::json run_reference_script(const std::string& command, const std::string& script) {
  std::cerr << "reference: " << command << "\n";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) throw_input_error("--reference: cannot run ", command);
  std::string out, last;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), static_cast<int>(buf.size()), pipe) != nullptr) out += buf.data();
  const int status = pclose(pipe);
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty()) last = line;
  if (status != 0 || last.empty() || last[0] != '{')
    throw_input_error("--reference: ", script, " failed (exit status ", status, "); its output:\n", out);
  nlohmann::json j = nlohmann::json::parse(last, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw_input_error("--reference: ", script, " printed no result JSON; last line: ", last);
  return j;
}

}  // namespace xcomp
