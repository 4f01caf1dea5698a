#include "model/cuda/backend_setting.h"

#include <cstdlib>

namespace xcomp::cuda {

BackendSetting backend_setting(const std::string& configured, const char* key, const char* variable) {
  if (!configured.empty()) return {configured, std::string(key) + " '" + configured + "'"};
  const char* text = std::getenv(variable);
  const std::string value = text == nullptr ? "" : text;
  return {value, std::string(variable) + "=" + value};
}

}  // namespace xcomp::cuda
