#include "trainer/tokenize_lines.h"

#include <cstdint>
#include <istream>
#include <nlohmann/json.hpp>
#include <ostream>

#include "model/input_error.h"

namespace xcomp {
namespace {

using nlohmann::json;

std::string ids_json(const std::vector<int32_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(ids[i]);
  }
  return out + "]";
}

std::vector<int32_t> parse_ids(const std::string& line) {
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) throw_input_error("expected a JSON array of token ids such as [9906, 1917]");
  std::vector<int32_t> ids;
  ids.reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    const json& id = j[i];
    if (!id.is_number_integer() || id.get<int64_t>() < INT32_MIN || id.get<int64_t>() > INT32_MAX) {
      throw_input_error("element ", i, " is ", id.dump(), ", not a token id");
    }
    ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  return ids;
}

// Decoded ids may end inside a UTF-8 sequence; JSON needs valid UTF-8, so such bytes
// print as U+FFFD, as tiktoken's decode does.
std::string text_json(const std::string& text) { return json(text).dump(-1, ' ', false, json::error_handler_t::replace); }

std::string process_line(const Tokenizer& tokenizer, const std::string& line, const TokenizeLinesOptions& options) {
  if (options.decode) return text_json(tokenizer.decode(parse_ids(line)));
  return ids_json(tokenizer.encode(line, options.allow_special));
}

}  // namespace

void tokenize_lines(const Tokenizer& tokenizer, std::istream& in, std::ostream& out, const TokenizeLinesOptions& options,
                    const std::string& source) {
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    try {
      out << process_line(tokenizer, line, options) << '\n';
    } catch (const InputError& e) {
      throw_input_error(source, " line ", number, ": ", e.what());
    }
    if (options.flush_each_line) out.flush();
  }
  if (in.bad()) throw_input_error(source, ": read error");
}

}  // namespace xcomp
