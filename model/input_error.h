// The one exception type for bad input from a user: a file, key or line that is not
// what it should be. Its message names the thing and what was expected; the command
// line prints it and exits non-zero. Invariants of our own code use glog's CHECK instead.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace xcomp {

class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& message) : std::runtime_error(message) {}
};

// Builds the message from streamable parts: throw_input_error(path, ": tensor ", name, " ...").
template <class... Parts>
[[noreturn]] void throw_input_error(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  throw InputError(out.str());
}

}  // namespace xcomp
