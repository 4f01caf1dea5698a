#include "tests/unit/tokenizer_texts.h"

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

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

}  // namespace xcomp::test
