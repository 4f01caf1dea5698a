// Where each of the CUDA backend's choices (kernels, products, allocator) comes from: the
// run's config (`cuda:` keys, passed in as CudaKernelChoices) where it sets one, else its
// XCOMP_CUDA_* environment variable, else the backend's default.
#pragma once

#include <string>

namespace xcomp::cuda {

struct BackendSetting {
  std::string value;  // "" where neither the config nor the variable sets it
  std::string named;  // for messages: "cuda.attention 'flsh'" or "XCOMP_CUDA_ATTENTION=flsh"
};

// `configured` (the config key `key`'s value) where non-empty, else `variable`'s.
BackendSetting backend_setting(const std::string& configured, const char* key, const char* variable);

}  // namespace xcomp::cuda
