#include "trainer/eval_gather.h"

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>

#include "trainer/eval_report.h"

namespace xcomp {

std::vector<nlohmann::json> gather_records(Communicator& comm, const std::vector<nlohmann::json>& mine) {
  std::string local;
  for (const auto& r : mine) local += eval_json_text(r) + "\n";
  std::vector<nlohmann::json> all;
  for (int root = 0; root < comm.world_size(); ++root) {
    uint64_t size = root == comm.rank() ? local.size() : 0;
    comm.broadcast_bytes(&size, sizeof size, root);
    std::string bytes = root == comm.rank() ? local : std::string(size, '\0');
    if (size > 0) comm.broadcast_bytes(bytes.data(), size, root);
    std::istringstream lines(bytes);
    for (std::string line; std::getline(lines, line);) all.push_back(nlohmann::json::parse(line));
  }
  std::stable_sort(all.begin(), all.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
    return a.at("item").get<int64_t>() < b.at("item").get<int64_t>();
  });
  return all;
}

}  // namespace xcomp
