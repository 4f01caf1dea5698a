#include "io/env_expand.h"

#include <cctype>
#include <cstdlib>

namespace xcomp {

namespace {

bool valid_name(const std::string& name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

// The index of the '}' that closes the '${' whose body starts at `from`, skipping nested
// ${...} references and $$ escapes; npos when there is none.
size_t matching_close(const std::string& text, size_t from) {
  int depth = 0;
  for (size_t i = from; i < text.size(); ++i) {
    if (text[i] == '$' && i + 1 < text.size() && text[i + 1] == '$') {
      ++i;
    } else if (text[i] == '$' && i + 1 < text.size() && text[i + 1] == '{') {
      ++depth;
      ++i;
    } else if (text[i] == '}') {
      if (depth == 0) return i;
      --depth;
    }
  }
  return std::string::npos;
}

// Expands the body of one ${...} reference into `out`; returns the error, or "".
// A default is itself expanded, and only when it is used (as the shell does), so
// ${XCOMP_MODELS:-${HOME}/models} works and an unused default cannot fail.
std::string expand_reference(const std::string& body, std::string& out) {
  const size_t dash = body.find(":-");
  const std::string name = body.substr(0, dash);
  if (!valid_name(name))
    return "'${" + body + "}' is not a variable reference (expected ${NAME} or ${NAME:-default})";
  const char* value = std::getenv(name.c_str());
  if (dash == std::string::npos) {
    if (value == nullptr)
      return "environment variable " + name + " is not set (write ${" + name + ":-default} to give a default)";
    out += value;
  } else {
    if (value != nullptr && *value != '\0') {
      out += value;
    } else {
      const EnvExpansion fallback = expand_env_vars(body.substr(dash + 2));
      if (!fallback.error.empty()) return fallback.error;
      out += fallback.value;
    }
  }
  return "";
}

}  // namespace

EnvExpansion expand_env_vars(const std::string& text) {
  EnvExpansion result;
  for (size_t i = 0; i < text.size(); ++i) {
    const bool dollar = text[i] == '$' && i + 1 < text.size();
    if (dollar && text[i + 1] == '$') {
      result.value += '$';
      ++i;
    } else if (dollar && text[i + 1] == '{') {
      const size_t close = matching_close(text, i + 2);
      if (close == std::string::npos) {
        result.error = "unterminated '${' in '" + text + "'";
        return result;
      }
      result.error = expand_reference(text.substr(i + 2, close - i - 2), result.value);
      if (!result.error.empty()) return result;
      i = close;
    } else {
      result.value += text[i];
    }
  }
  return result;
}

std::string escape_env_vars(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '$') out += '$';
    out += c;
  }
  return out;
}

}  // namespace xcomp
