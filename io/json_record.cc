#include "io/json_record.h"

#include "io/prepare_sources.h"

namespace xcomp {

using nlohmann::json;

namespace {
const char* type_name(const json& value) { return value.type_name(); }

const json& require_field(const json& object, const std::string& key, json::value_t type, const char* expected,
                          const std::string& where) {
  auto it = object.find(key);
  if (it == object.end()) throw MalformedRecord(where + ": missing field '" + key + "' (expected " + expected + ")");
  if (it->type() != type)
    throw MalformedRecord(where + ": field '" + key + "' is " + type_name(*it) + ", expected " + expected);
  return *it;
}
}  // namespace

json parse_json_record(const std::string& text, const std::string& where, const std::vector<std::string>& unused_keys) {
  json::parser_callback_t keep = nullptr;
  if (!unused_keys.empty())
    keep = [&unused_keys](int, json::parse_event_t event, json& value) {
      if (event != json::parse_event_t::key) return true;
      for (const std::string& key : unused_keys)
        if (value.get_ref<const std::string&>() == key) return false;
      return true;
    };
  json record = json::parse(text, keep, /*allow_exceptions=*/false);
  if (record.is_discarded()) throw MalformedRecord(where + ": not valid JSON (expected one JSON object a line)");
  if (!record.is_object()) throw MalformedRecord(where + ": a JSON " + type_name(record) + ", expected a JSON object");
  return record;
}

const std::string& require_string(const json& object, const std::string& key, const std::string& where) {
  return require_field(object, key, json::value_t::string, "a string", where).get_ref<const std::string&>();
}

const json& require_array(const json& object, const std::string& key, const std::string& where) {
  return require_field(object, key, json::value_t::array, "an array", where);
}

const json& require_object(const json& object, const std::string& key, const std::string& where) {
  return require_field(object, key, json::value_t::object, "an object", where);
}

}  // namespace xcomp
