// Checked access to one JSON record of an input file: every missing field or wrong
// type becomes a MalformedRecord that names where ("file:line") and what was expected.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace xcomp {

// Parses one line; a MalformedRecord naming `where` when it is not a JSON object.
// Members named in `unused_keys` (at any depth) are checked for syntax but not stored:
// MRQA lines carry token and span arrays several times the size of their text.
nlohmann::json parse_json_record(const std::string& text, const std::string& where,
                                 const std::vector<std::string>& unused_keys = {});

// The field `key` of `object` as a string / array / object.
const std::string& require_string(const nlohmann::json& object, const std::string& key, const std::string& where);
const nlohmann::json& require_array(const nlohmann::json& object, const std::string& key, const std::string& where);
const nlohmann::json& require_object(const nlohmann::json& object, const std::string& key, const std::string& where);

}  // namespace xcomp
