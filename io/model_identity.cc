#include "io/model_identity.h"

#include "io/sha256.h"
#include "model/input_error.h"

namespace xcomp {

std::string model_identity_sha256(const LoadedModel& model) {
  std::string summary;
  for (const auto& [name, tensor] : model.tensors) {  // std::map: name order
    if (!tensor.on_host()) throw_input_error("model identity: tensor ", name, " is not in host memory");
    summary += name + " " + dtype_name(tensor.dtype()) + " " + shape_str(tensor.shape()) + " " +
               sha256_hex(tensor.raw(), tensor.nbytes()) + "\n";
  }
  if (summary.empty()) throw_input_error("model identity: ", model.config.source, " has no weights loaded");
  summary += "tokenizer " + (model.tokenizer ? model.tokenizer->sha256() : std::string("none")) + "\n";
  return sha256_hex(summary);
}

}  // namespace xcomp
