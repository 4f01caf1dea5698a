// The YAML spelling of every enum value in the experiment configuration. These strings
// are a user-facing contract: configs in the wild use them.
#include "io/config_schema.h"

#include <glog/logging.h>

#include "io/closest_name.h"
#include "model/input_error.h"
#include "model/lora.h"

namespace xcomp {

template <>
const std::vector<EnumSpelling<CompressorMode>>& enum_spellings() {
  static const std::vector<EnumSpelling<CompressorMode>> names = {
      {CompressorMode::kKeyValue, "kv"}, {CompressorMode::kEmbedding, "embedding"}, {CompressorMode::kNone, "none"}};
  return names;
}

template <>
const std::vector<EnumSpelling<DecoderPositions>>& enum_spellings() {
  static const std::vector<EnumSpelling<DecoderPositions>> names = {
      {DecoderPositions::kReference, "reference"}, {DecoderPositions::kAfterPrefix, "after_prefix"}};
  return names;
}

template <>
const std::vector<EnumSpelling<Objective>>& enum_spellings() {
  static const std::vector<EnumSpelling<Objective>> names = {{Objective::kRegeneration, "regeneration"},
                                                             {Objective::kQa, "qa"}};
  return names;
}

template <>
const std::vector<EnumSpelling<LrScheduleKind>>& enum_spellings() {
  static const std::vector<EnumSpelling<LrScheduleKind>> names = {
      {LrScheduleKind::kConstantWithWarmup, "constant_with_warmup"},
      {LrScheduleKind::kCosine, "cosine"},
      {LrScheduleKind::kLinear, "linear"}};
  return names;
}

template <>
const std::vector<EnumSpelling<NonfiniteAction>>& enum_spellings() {
  static const std::vector<EnumSpelling<NonfiniteAction>> names = {{NonfiniteAction::kStop, "stop"},
                                                                   {NonfiniteAction::kSkip, "skip"}};
  return names;
}

template <>
const std::vector<EnumSpelling<ProgressMode>>& enum_spellings() {
  static const std::vector<EnumSpelling<ProgressMode>> names = {
      {ProgressMode::kAuto, "auto"}, {ProgressMode::kAlways, "always"}, {ProgressMode::kNever, "never"}};
  return names;
}

template <>
const std::vector<EnumSpelling<Backend>>& enum_spellings() {
  static const std::vector<EnumSpelling<Backend>> names = {{Backend::kCpu, "cpu"}, {Backend::kCuda, "cuda"}};
  return names;
}

template <>
const std::vector<EnumSpelling<CudaWeights>>& enum_spellings() {
  static const std::vector<EnumSpelling<CudaWeights>> names = {{CudaWeights::kBf16, "bf16"},
                                                               {CudaWeights::kF32, "f32"}};
  return names;
}

template <>
const std::vector<EnumSpelling<CudaAttentionChoice>>& enum_spellings() {
  static const std::vector<EnumSpelling<CudaAttentionChoice>> names = {
      {CudaAttentionChoice::kDefault, "default"}, {CudaAttentionChoice::kGemm, "gemm"},
      {CudaAttentionChoice::kGemmCausal, "gemm_causal"}, {CudaAttentionChoice::kGemmCausalBf16, "gemm_causal_bf16"},
      {CudaAttentionChoice::kFlash, "flash"},
      {CudaAttentionChoice::kFlashBf16, "flash_bf16"}, {CudaAttentionChoice::kTiled, "tiled"}};
  return names;
}

template <>
const std::vector<EnumSpelling<CudaGemmChoice>>& enum_spellings() {
  static const std::vector<EnumSpelling<CudaGemmChoice>> names = {{CudaGemmChoice::kDefault, "default"},
                                                                  {CudaGemmChoice::kCublas, "cublas"},
                                                                  {CudaGemmChoice::kLt, "lt"},
                                                                  {CudaGemmChoice::kLtTuned, "lt_tuned"}};
  return names;
}

template <>
const std::vector<EnumSpelling<ActivationMemory>>& enum_spellings() {
  static const std::vector<EnumSpelling<ActivationMemory>> names = {{ActivationMemory::kKeep, "keep"},
                                                                    {ActivationMemory::kRecompute, "recompute"}};
  return names;
}

// The model's list (model/lora.h), as strings in its order.
const std::vector<std::string>& lora_target_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (int i = 0; i < kLoraTargetCount; ++i) out.push_back(lora_target_name(static_cast<LoraTarget>(i)));
    return out;
  }();
  return names;
}

namespace {

template <class E>
const char* spelling(E value) {
  for (const auto& s : enum_spellings<E>())
    if (s.value == value) return s.name;
  LOG(FATAL) << "enum value " << static_cast<int>(value) << " has no spelling";
  return "";
}

}  // namespace

template <class E>
E value_named(const std::string& text, const std::string& what) {
  std::vector<std::string> allowed;
  for (const auto& s : enum_spellings<E>()) {
    if (text == s.name) return s.value;
    allowed.push_back(s.name);
  }
  // Worded as the config's own message for the same mistake (io/config_schema.cc).
  std::string list;
  for (const std::string& name : allowed) list += (list.empty() ? "" : ", ") + name;
  const std::string suggestion = closest_name(text, allowed);
  throw_input_error(what, ": expected one of ", list, ", got '", text, "'",
                    suggestion.empty() ? "" : "; did you mean '" + suggestion + "'?");
}
template Backend value_named<Backend>(const std::string&, const std::string&);
template CudaWeights value_named<CudaWeights>(const std::string&, const std::string&);
template CompressorMode value_named<CompressorMode>(const std::string&, const std::string&);
template ActivationMemory value_named<ActivationMemory>(const std::string&, const std::string&);
template CudaAttentionChoice value_named<CudaAttentionChoice>(const std::string&, const std::string&);
template CudaGemmChoice value_named<CudaGemmChoice>(const std::string&, const std::string&);

const char* name_of(CompressorMode value) { return spelling(value); }
const char* name_of(DecoderPositions value) { return spelling(value); }
const char* name_of(Objective value) { return spelling(value); }
const char* name_of(LrScheduleKind value) { return spelling(value); }
const char* name_of(NonfiniteAction value) { return spelling(value); }
const char* name_of(ProgressMode value) { return spelling(value); }
const char* name_of(Backend value) { return spelling(value); }
const char* name_of(CudaWeights value) { return spelling(value); }
const char* name_of(ActivationMemory value) { return spelling(value); }
const char* name_of(CudaAttentionChoice value) { return spelling(value); }
const char* name_of(CudaGemmChoice value) { return spelling(value); }

}  // namespace xcomp
