#include "trainer/eval_decoding.h"

#include <glog/logging.h>

#include <algorithm>

#include "model/compressed_decoding.h"
#include "model/generation.h"

namespace xcomp {

const char* eval_system_name(EvalSystem system) {
  switch (system) {
    case EvalSystem::kCompressed:
      return "compressed";
    case EvalSystem::kFullContext:
      return "full_context";
    case EvalSystem::kNoContext:
      return "no_context";
  }
  return "?";
}

namespace {

std::vector<int32_t> without_stop(std::vector<int32_t> ids, const std::vector<int32_t>& stop_ids) {
  if (!ids.empty() && std::find(stop_ids.begin(), stop_ids.end(), ids.back()) != stop_ids.end()) ids.pop_back();
  return ids;
}

std::vector<int32_t> concat(std::initializer_list<const std::vector<int32_t>*> parts) {
  std::vector<int32_t> out;
  for (const auto* p : parts) out.insert(out.end(), p->begin(), p->end());
  return out;
}

}  // namespace

EvalDecoder::EvalDecoder(TrainedCompressor& trained, int64_t max_new_tokens)
    : trained_(trained), max_new_tokens_(max_new_tokens) {
  if (trained.compressor->settings().mode == CompressorMode::kNone)
    decoder_adapters_ = std::make_unique<LoraWeights>(
        lora_on_backend(trained.compressor->lora(), trained.model->ops(), /*with_gradients=*/false));
}

GenerationOptions EvalDecoder::options(int64_t max_new_tokens) const {
  GenerationOptions o;
  o.max_new_tokens = max_new_tokens;  // sampling defaults to greedy
  const LlamaConfig& c = trained_.loaded.config;
  if (c.eos_token_id >= 0) o.stop_ids.push_back(c.eos_token_id);
  for (int32_t id : c.extra_eos_token_ids) o.stop_ids.push_back(id);
  if (trained_.loaded.tokenizer->eot_id() >= 0) o.stop_ids.push_back(trained_.loaded.tokenizer->eot_id());
  return o;
}

std::vector<int32_t> EvalDecoder::generate_plain(const std::vector<int32_t>& prompt, int64_t max_new_tokens,
                                                 LoraWeights* adapters) const {
  GenerationOptions o = options(max_new_tokens);
  o.adapters = adapters;
  KvCache cache(trained_.loaded.config, 1, static_cast<int64_t>(prompt.size()) + max_new_tokens, trained_.model->ops());
  return without_stop(generate(*trained_.model, cache, prompt, o), o.stop_ids);
}

std::vector<int32_t> EvalDecoder::generate_compressed(const std::vector<int32_t>& text,
                                                      const std::vector<int32_t>& decoder, bool ae_token,
                                                      int64_t max_new_tokens) const {
  Tensor tokens = Tensor::empty({1, static_cast<int64_t>(text.size())}, DType::I32);
  std::copy(text.begin(), text.end(), tokens.data<int32_t>());
  Compressor& compressor = *trained_.compressor;
  const CompressedPrompt prompt = compress(*trained_.model, compressor, tokens, {static_cast<int64_t>(text.size())});
  const bool embedding = compressor.settings().mode == CompressorMode::kEmbedding;
  const DecoderPrompt dp{&prompt, 0, compressor.settings().decoder_positions,
                         embedding && ae_token ? &compressor.ae_token() : nullptr};
  const GenerationOptions o = options(max_new_tokens);
  return without_stop(generate_from_compressed(*trained_.model, dp, decoder, o), o.stop_ids);
}

std::vector<int32_t> EvalDecoder::regenerate(const std::vector<int32_t>& text, EvalSystem system) const {
  CHECK(!decoder_adapters_) << "a mode-none checkpoint is for QA only";
  const std::vector<int32_t> bos = {trained_.tokens.bos};
  // A regeneration is as long as its text; the cap keeps models that never emit EOS
  // (stories260K never saw it) from running on.
  const int64_t cap = std::min<int64_t>(max_new_tokens_, static_cast<int64_t>(text.size()) + 1);
  switch (system) {
    case EvalSystem::kCompressed:
      return generate_compressed(text, bos, /*ae_token=*/true, cap);
    case EvalSystem::kFullContext:
      return generate_plain(concat({&bos, &text, &bos}), cap);
    case EvalSystem::kNoContext:
      return generate_plain(bos, cap);
  }
  return {};
}

std::vector<int32_t> EvalDecoder::answer(const std::vector<int32_t>& context, const std::vector<int32_t>& question,
                                         EvalSystem system) const {
  const ObjectiveTokens& t = trained_.tokens;
  const std::vector<int32_t> prompt = qa_prompt(t, question);
  const std::vector<int32_t> bos = t.bos >= 0 ? std::vector<int32_t>{t.bos} : std::vector<int32_t>{};
  switch (system) {
    case EvalSystem::kCompressed:
      // Mode none decodes as it trained (trainer/objective.h): the full context, its LoRA.
      if (decoder_adapters_)
        return generate_plain(full_context_qa_prompt(t, context, question), max_new_tokens_, decoder_adapters_.get());
      return generate_compressed(context, prompt, /*ae_token=*/false, max_new_tokens_);
    case EvalSystem::kFullContext:
      return generate_plain(full_context_qa_prompt(t, context, question), max_new_tokens_);
    case EvalSystem::kNoContext:
      return generate_plain(concat({&bos, &prompt}), max_new_tokens_);
  }
  return {};
}

}  // namespace xcomp
