#include "trainer/objective.h"

#include <glog/logging.h>

#include <algorithm>

namespace xcomp {

namespace {

std::vector<int32_t> row_tokens(const PaddedTokens& p, int64_t row) {
  const int64_t t = p.tokens.dim(1);
  const int32_t len = p.lengths.data<int32_t>()[row];
  const int32_t* begin = p.tokens.data<int32_t>() + row * t;
  return std::vector<int32_t>(begin, begin + len);
}

// Right-pads decoder inputs and targets (-1 beyond each row's length).
void fill_decoder(CompressorBatch& out, const std::vector<std::vector<int32_t>>& inputs,
                  const std::vector<std::vector<int32_t>>& targets, int32_t pad) {
  const int64_t b = static_cast<int64_t>(inputs.size());
  int64_t t = 1;
  for (const auto& row : inputs) t = std::max<int64_t>(t, row.size());
  out.decoder_tokens = Tensor::empty({b, t}, DType::I32);
  out.targets = Tensor::empty({b, t}, DType::I32);
  out.decoder_lengths.assign(b, 0);
  for (int64_t r = 0; r < b; ++r) {
    CHECK_EQ(inputs[r].size(), targets[r].size());
    out.decoder_lengths[r] = static_cast<int64_t>(inputs[r].size());
    for (int64_t i = 0; i < t; ++i) {
      const bool real = i < static_cast<int64_t>(inputs[r].size());
      out.decoder_tokens.data<int32_t>()[r * t + i] = real ? inputs[r][i] : pad;
      out.targets.data<int32_t>()[r * t + i] = real ? targets[r][i] : -1;
    }
  }
}

void fill_text(CompressorBatch& out, const MicroBatch& batch) {
  out.text = batch.text.tokens;
  out.text_lengths.clear();
  for (int64_t r = 0; r < batch.size(); ++r) out.text_lengths.push_back(batch.text.lengths.data<int32_t>()[r]);
}

}  // namespace

ObjectiveTokens objective_tokens(const Tokenizer& tokenizer, int32_t bos, int32_t eos, int32_t pad) {
  ObjectiveTokens t;
  t.bos = bos;
  t.eos = eos;
  t.pad = pad;
  t.question_prefix = tokenizer.encode("Question: ");
  t.answer_prefix = tokenizer.encode(" Answer: ");
  return t;
}

CompressorBatch regeneration_batch(const MicroBatch& batch, const ObjectiveTokens& tokens) {
  CHECK_GE(tokens.bos, 0);
  CHECK_GE(tokens.eos, 0);
  CompressorBatch out;
  fill_text(out, batch);
  std::vector<std::vector<int32_t>> inputs, targets;
  for (int64_t r = 0; r < batch.size(); ++r) {
    std::vector<int32_t> text = row_tokens(batch.text, r);
    std::vector<int32_t> input = {tokens.bos};
    input.insert(input.end(), text.begin(), text.end());
    text.push_back(tokens.eos);
    inputs.push_back(std::move(input));
    targets.push_back(std::move(text));
  }
  fill_decoder(out, inputs, targets, tokens.pad);
  return out;
}

std::vector<int32_t> qa_prompt(const ObjectiveTokens& tokens, const std::vector<int32_t>& question) {
  std::vector<int32_t> prompt = tokens.question_prefix;
  prompt.insert(prompt.end(), question.begin(), question.end());
  prompt.insert(prompt.end(), tokens.answer_prefix.begin(), tokens.answer_prefix.end());
  return prompt;
}

std::vector<int32_t> full_context_qa_prompt(const ObjectiveTokens& tokens, const std::vector<int32_t>& context,
                                            const std::vector<int32_t>& question) {
  std::vector<int32_t> prompt;
  if (tokens.bos >= 0) prompt.push_back(tokens.bos);
  prompt.insert(prompt.end(), context.begin(), context.end());
  const std::vector<int32_t> rest = qa_prompt(tokens, question);
  prompt.insert(prompt.end(), rest.begin(), rest.end());
  return prompt;
}

namespace {

// QA decoder rows: `prompt(r)` + answer; position i predicts input[i + 1], the last
// answer token predicts EOS. Only the answer and EOS are targets.
template <typename PromptOf>
void fill_qa_decoder(CompressorBatch& out, const MicroBatch& batch, const ObjectiveTokens& tokens,
                     PromptOf prompt_of) {
  CHECK(batch.kind == SampleKind::kQa);
  CHECK_GE(tokens.eos, 0);
  std::vector<std::vector<int32_t>> inputs, targets;
  for (int64_t r = 0; r < batch.size(); ++r) {
    std::vector<int32_t> input = prompt_of(r);
    const size_t prompt = input.size();
    CHECK_GT(prompt, 0u) << "the QA prompt template encodes to no tokens";
    const std::vector<int32_t> answer = row_tokens(batch.answer, r);
    input.insert(input.end(), answer.begin(), answer.end());
    std::vector<int32_t> target(input.size(), -1);
    for (size_t i = prompt - 1; i + 1 < input.size(); ++i) target[i] = input[i + 1];
    target.back() = tokens.eos;
    inputs.push_back(std::move(input));
    targets.push_back(std::move(target));
  }
  fill_decoder(out, inputs, targets, tokens.pad);
}

}  // namespace

CompressorBatch qa_batch(const MicroBatch& batch, const ObjectiveTokens& tokens) {
  CompressorBatch out;
  fill_text(out, batch);
  fill_qa_decoder(out, batch, tokens, [&](int64_t r) { return qa_prompt(tokens, row_tokens(batch.question, r)); });
  return out;
}

CompressorBatch full_context_qa_batch(const MicroBatch& batch, const ObjectiveTokens& tokens) {
  CompressorBatch out;  // no text: the context is in the decoder tokens
  fill_qa_decoder(out, batch, tokens, [&](int64_t r) {
    return full_context_qa_prompt(tokens, row_tokens(batch.text, r), row_tokens(batch.question, r));
  });
  return out;
}

int64_t count_targets(const CompressorBatch& batch) {
  const Tensor& t = batch.targets;
  return std::count_if(t.data<int32_t>(), t.data<int32_t>() + t.numel(), [](int32_t v) { return v >= 0; });
}

}  // namespace xcomp
