#include "trainer/eval_decoding.h"

#include <glog/logging.h>

#include <algorithm>

#include "model/batched_generation.h"
#include "model/input_error.h"
#include "trainer/eval_chat_prompts.h"

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

TokenIds concat(std::initializer_list<const TokenIds*> parts) {
  TokenIds out;
  for (const auto* p : parts) out.insert(out.end(), p->begin(), p->end());
  return out;
}

// The texts as one right-padded I32 [B, longest] batch for compress().
Tensor text_batch(const std::vector<const TokenIds*>& texts, std::vector<int64_t>& lengths) {
  int64_t longest = 0;
  for (const TokenIds* t : texts) longest = std::max<int64_t>(longest, static_cast<int64_t>(t->size()));
  Tensor batch = Tensor::zeros({static_cast<int64_t>(texts.size()), longest}, DType::I32);
  for (size_t r = 0; r < texts.size(); ++r) {
    std::copy(texts[r]->begin(), texts[r]->end(), batch.data<int32_t>() + r * longest);
    lengths.push_back(static_cast<int64_t>(texts[r]->size()));
  }
  return batch;
}

}  // namespace

const char* baseline_prompt_name(BaselinePrompt prompt) { return prompt == BaselinePrompt::kChat ? "chat" : "plain"; }

EvalDecoder::EvalDecoder(TrainedCompressor& trained, int64_t max_new_tokens, BaselinePrompt baseline)
    : trained_(trained), max_new_tokens_(max_new_tokens), baseline_(baseline) {
  if (baseline == BaselinePrompt::kChat && !has_chat_format(*trained.loaded.tokenizer))
    throw_input_error("--baseline-prompt chat: the tokenizer of ", trained.loaded.config.source,
                      " has no known chat format (ChatML <|im_start|> or LLaMA-3 <|start_header_id|>)");
  if (trained.compressor->settings().mode == CompressorMode::kNone)
    decoder_adapters_ = std::make_unique<LoraWeights>(
        lora_on_backend(trained.compressor->lora(), trained.model->ops(), /*with_gradients=*/false));
}

GenerationOptions EvalDecoder::options() const {
  GenerationOptions o;  // sampling defaults to greedy; each row has its own token limit
  const LlamaConfig& c = trained_.loaded.config;
  if (c.eos_token_id >= 0) o.stop_ids.push_back(c.eos_token_id);
  for (int32_t id : c.extra_eos_token_ids) o.stop_ids.push_back(id);
  if (trained_.loaded.tokenizer->eot_id() >= 0) o.stop_ids.push_back(trained_.loaded.tokenizer->eot_id());
  return o;
}

std::vector<TokenIds> EvalDecoder::without_stops(std::vector<TokenIds> produced) const {
  const std::vector<int32_t> stop_ids = options().stop_ids;
  for (TokenIds& ids : produced)
    if (!ids.empty() && std::find(stop_ids.begin(), stop_ids.end(), ids.back()) != stop_ids.end()) ids.pop_back();
  return produced;
}

std::vector<TokenIds> EvalDecoder::generate_plain(const std::vector<BatchedRow>& rows, LoraWeights* adapters) const {
  GenerationOptions o = options();
  o.adapters = adapters;
  return without_stops(generate_batch(*trained_.model, rows, o));
}

std::vector<TokenIds> EvalDecoder::generate_compressed(const std::vector<const TokenIds*>& texts,
                                                       const std::vector<BatchedRow>& rows, bool ae_token) const {
  std::vector<int64_t> lengths;
  const Tensor tokens = text_batch(texts, lengths);
  Compressor& compressor = *trained_.compressor;
  const CompressedPrompt prompt = compress(*trained_.model, compressor, tokens, lengths);
  const bool embedding = compressor.settings().mode == CompressorMode::kEmbedding;
  return without_stops(generate_batch_from_compressed(*trained_.model, prompt,
                                                      compressor.settings().decoder_positions,
                                                      embedding && ae_token ? &compressor.ae_token() : nullptr, rows,
                                                      options()));
}

std::vector<TokenIds> EvalDecoder::regenerate(const std::vector<const TokenIds*>& texts, EvalSystem system) const {
  CHECK(!decoder_adapters_) << "a mode-none checkpoint is for QA only";
  const TokenIds bos = {trained_.tokens.bos};
  std::vector<BatchedRow> rows;
  for (const TokenIds* text : texts) {
    // A regeneration is as long as its text; the cap keeps models that never emit EOS
    // (stories260K never saw it) from running on.
    const int64_t cap = std::min<int64_t>(max_new_tokens_, static_cast<int64_t>(text->size()) + 1);
    switch (system) {
      case EvalSystem::kCompressed:
      case EvalSystem::kNoContext:
        rows.push_back({bos, cap});
        break;
      case EvalSystem::kFullContext:
        rows.push_back({baseline_ == BaselinePrompt::kChat ? chat_repeat_prompt(*trained_.loaded.tokenizer, *text)
                                                           : concat({&bos, text, &bos}),
                         cap});
        break;
    }
  }
  if (system == EvalSystem::kCompressed) return generate_compressed(texts, rows, /*ae_token=*/true);
  return generate_plain(rows);
}

std::vector<TokenIds> EvalDecoder::answer(const std::vector<QaQuestion>& questions, EvalSystem system) const {
  const ObjectiveTokens& t = trained_.tokens;
  const TokenIds bos = t.bos >= 0 ? TokenIds{t.bos} : TokenIds{};
  std::vector<BatchedRow> rows;
  std::vector<const TokenIds*> contexts;
  // Mode none decodes as it trained (trainer/objective.h): the full context, its LoRA.
  const bool full_context = system == EvalSystem::kFullContext || (system == EvalSystem::kCompressed && decoder_adapters_);
  const bool chat = baseline_ == BaselinePrompt::kChat;
  const Tokenizer& tokenizer = *trained_.loaded.tokenizer;
  for (const QaQuestion& q : questions) {
    const TokenIds prompt = qa_prompt(t, *q.question);
    if (chat && system == EvalSystem::kFullContext)
      rows.push_back({chat_qa_prompt(tokenizer, q.context, *q.question), max_new_tokens_});
    else if (chat && system == EvalSystem::kNoContext)
      rows.push_back({chat_qa_prompt(tokenizer, nullptr, *q.question), max_new_tokens_});
    else if (full_context)
      rows.push_back({full_context_qa_prompt(t, *q.context, *q.question), max_new_tokens_});
    else if (system == EvalSystem::kNoContext)
      rows.push_back({concat({&bos, &prompt}), max_new_tokens_});
    else
      rows.push_back({prompt, max_new_tokens_});
    contexts.push_back(q.context);
  }
  if (system == EvalSystem::kCompressed && !decoder_adapters_)
    return generate_compressed(contexts, rows, /*ae_token=*/false);
  return generate_plain(rows, system == EvalSystem::kCompressed ? decoder_adapters_.get() : nullptr);
}

}  // namespace xcomp
