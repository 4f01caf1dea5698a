// Evaluation records of every rank, gathered: each rank evaluates its share of the items
// (trainer/eval_items.h, items_of_rank) and the report is built from all of them.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "comm/communicator.h"

namespace xcomp {

// Every rank's records on every rank, in item order (records of one item keep their
// order), so that a report summed over them is the same bits whatever the world size.
// Each rank in turn broadcasts its records as JSON lines (the communicator has no
// gather; an evaluation's records are small next to a model).
std::vector<nlohmann::json> gather_records(Communicator& comm, const std::vector<nlohmann::json>& mine);

}  // namespace xcomp
