#include "io/prepare_sources.h"

namespace xcomp {

std::string trim_whitespace(const std::string& text) {
  const char* space = " \t\r\n\f\v";
  const size_t first = text.find_first_not_of(space);
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

std::string file_name_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string record_location(const std::string& path, int64_t line) { return path + ":" + std::to_string(line); }

}  // namespace xcomp
