#include "tests/unit/tokenizer_texts.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/test_support.h"

namespace xcomp::test {
namespace {

std::string strip(const std::string& s) {
  const char* space = " \t\n\r\v\f";
  size_t begin = s.find_first_not_of(space);
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(space) - begin + 1);
}

std::vector<std::string> json_lines_field(std::istream& in, const char* field, bool skip_header) {
  std::vector<std::string> out;
  std::string line;
  if (skip_header) std::getline(in, line);
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    out.push_back(nlohmann::json::parse(line).at(field).get<std::string>());
  }
  return out;
}

}  // namespace

std::vector<std::string> tinystories_stories() {
  std::string all = read_file(fixture("tinystories/tinystories_sample.txt"));
  const std::string separator = "<|endoftext|>";
  std::vector<std::string> stories;
  for (size_t begin = 0;;) {
    size_t end = all.find(separator, begin);
    std::string story = strip(all.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (!story.empty()) stories.push_back(story);
    if (end == std::string::npos) break;
    begin = end + separator.size();
  }
  return stories;
}

std::vector<std::string> arxiv_abstracts() {
  std::ifstream in(fixture("arxiv/arxiv-metadata-oai-snapshot.first200.jsonl"));
  return json_lines_field(in, "abstract", false);
}

std::vector<std::string> squad_contexts() {
  std::string command = "gzip -dc '" + fixture("qa/mrqa_SQuAD_dev.jsonl.gz") + "' 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return {};
  std::string text;
  char buf[1 << 16];
  for (size_t n; (n = fread(buf, 1, sizeof buf, pipe)) > 0;) text.append(buf, n);
  if (pclose(pipe) != 0) return {};
  std::istringstream in(text);
  return json_lines_field(in, "context", true);
}

std::vector<TokenizerReferenceCase> tokenizer_reference_cases(const std::string& file_name) {
  using nlohmann::json;
  json doc = json::parse(read_file(source_dir() + "/tests/reference/data/" + file_name));
  std::map<std::string, std::vector<std::string>> texts = {
      {"tinystories", tinystories_stories()}, {"arxiv", arxiv_abstracts()}, {"squad", squad_contexts()}};
  std::vector<TokenizerReferenceCase> cases;
  for (const json& c : doc.at("cases")) {
    TokenizerReferenceCase r;
    std::string source = c.at("source");
    if (source == "text") {
      r.text = c.at("text");
      r.label = "text " + json(r.text).dump();
    } else {
      size_t index = c.at("index");
      const auto& list = texts.at(source);
      if (list.empty() && source == "squad") continue;  // no gzip here
      EXPECT_LT(index, list.size()) << source;
      if (index >= list.size()) continue;
      r.text = list[index];
      r.label = source + " " + std::to_string(index);
      EXPECT_EQ(r.text.size(), c.at("bytes").get<size_t>()) << r.label << ": not the text the reference cut";
    }
    r.parse_special = c.at("parse_special");
    r.ids = c.at("ids").get<std::vector<int32_t>>();
    cases.push_back(std::move(r));
  }
  return cases;
}

}  // namespace xcomp::test
