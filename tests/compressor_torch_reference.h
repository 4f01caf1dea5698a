// Running model/compressor.cc on the batches of a fixture written by
// tests/reference/make_compressor_reference.py (PyTorch + transformers + PEFT, the
// paper's stack) with the fixture's parameters, and measuring how far xcomp's loss and
// gradients are from PyTorch's. Shared by tests/unit/compressor_torch_test.cc
// (stories260K) and tests/slow/compressor_torch_smollm2_test.cc (SmolLM2); header-only
// so that it needs no build-file change.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "io/micro_batch.h"
#include "io/safetensors.h"
#include "model/compressor.h"
#include "model/cpu/cpu_ops.h"
#include "model/llama.h"
#include "trainer/objective.h"

namespace xcomp::test {

struct TorchCase {
  std::string name;  // the prefix of its tensors in the fixture
  CompressorMode mode;
  bool regeneration;  // false: QA
  DecoderPositions positions;
};

// Every case the Python script can write; a fixture holds a subset (see its docstring).
inline std::vector<TorchCase> all_torch_cases() {
  return {{"kv_regeneration", CompressorMode::kKeyValue, true, DecoderPositions::kReference},
          {"kv_qa", CompressorMode::kKeyValue, false, DecoderPositions::kReference},
          {"kv_regeneration_after_prefix", CompressorMode::kKeyValue, true, DecoderPositions::kAfterPrefix},
          {"embedding_regeneration", CompressorMode::kEmbedding, true, DecoderPositions::kReference},
          {"embedding_qa", CompressorMode::kEmbedding, false, DecoderPositions::kReference}};
}

inline TorchCase torch_case(const std::string& name) {
  for (const TorchCase& c : all_torch_cases())
    if (c.name == name) return c;
  ADD_FAILURE() << "unknown case " << name;
  return {};
}

inline std::vector<int64_t> int64s(const Tensor& t) {
  return std::vector<int64_t>(t.data<int32_t>(), t.data<int32_t>() + t.numel());
}

inline int32_t scalar_id(const SafetensorsFile& f, const std::string& name) { return f.tensor(name).data<int32_t>()[0]; }

// The rows of a right-padded [B, T] block with their lengths, as lists.
inline std::vector<std::vector<int32_t>> rows_of(const Tensor& tokens, const Tensor& lengths) {
  std::vector<std::vector<int32_t>> out;
  for (int64_t r = 0; r < tokens.dim(0); ++r) {
    const int32_t* row = tokens.data<int32_t>() + r * tokens.dim(1);
    out.emplace_back(row, row + lengths.data<int32_t>()[r]);
  }
  return out;
}

// The fixture's batch for one objective, exactly as stored (the C++ side feeds the ids
// PyTorch saw; objective_batch_from_pieces checks they are what trainer/objective.cc builds).
inline CompressorBatch torch_batch(const SafetensorsFile& f, bool regeneration) {
  const std::string p = regeneration ? "regeneration." : "qa.";
  CompressorBatch b;
  b.text = f.tensor("text").clone();
  b.text_lengths = int64s(f.tensor("text_lengths"));
  b.decoder_tokens = f.tensor(p + "decoder_tokens").clone();
  b.decoder_lengths = int64s(f.tensor(p + "decoder_lengths"));
  b.targets = f.tensor(p + "targets").clone();
  return b;
}

// The same batch rebuilt by trainer/objective.cc from the stored pieces (texts,
// questions, answers and the two halves of the QA template).
inline CompressorBatch objective_batch_from_pieces(const SafetensorsFile& f, bool regeneration) {
  ObjectiveTokens tokens;
  tokens.bos = scalar_id(f, "ids.bos");
  tokens.eos = scalar_id(f, "ids.eos");
  tokens.pad = scalar_id(f, "ids.pad");
  MicroBatch mb;
  mb.text = pad_sequences(rows_of(f.tensor("text"), f.tensor("text_lengths")), tokens.pad);
  mb.samples.resize(mb.text.tokens.dim(0));
  if (regeneration) return regeneration_batch(mb, tokens);
  mb.kind = SampleKind::kQa;
  mb.question = pad_sequences(rows_of(f.tensor("qa.question"), f.tensor("qa.question_lengths")), tokens.pad);
  mb.answer = pad_sequences(rows_of(f.tensor("qa.answer"), f.tensor("qa.answer_lengths")), tokens.pad);
  const Tensor qp = f.tensor("qa.question_prefix"), ap = f.tensor("qa.answer_prefix");
  tokens.question_prefix.assign(qp.data<int32_t>(), qp.data<int32_t>() + qp.numel());
  tokens.answer_prefix.assign(ap.data<int32_t>(), ap.data<int32_t>() + ap.numel());
  return qa_batch(mb, tokens);
}

inline std::vector<int32_t> ids_of(const Tensor& t) {
  return std::vector<int32_t>(t.data<int32_t>(), t.data<int32_t>() + t.numel());
}

// A Compressor with the fixture's settings (N from compression_tokens, r from layer 0's
// q_proj lora_A, alpha stored, dropout 0, targets q and v) holding the fixture's values.
inline std::unique_ptr<Compressor> torch_compressor(const LlamaConfig& config, const SafetensorsFile& f,
                                                    const TorchCase& c) {
  CompressorSettings s;
  s.mode = c.mode;
  s.decoder_positions = c.positions;
  s.num_tokens = f.shape("param.compression_tokens").at(0);
  s.lora.r = f.shape("param.base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight").at(0);
  s.lora.alpha = f.tensor("lora.alpha").data<float>()[0];
  s.lora.dropout = 0.0;
  s.lora.targets = {LoraTarget::kQ, LoraTarget::kV};
  auto comp = std::make_unique<Compressor>(config, s, /*seed=*/1);
  int64_t loaded = 0;
  for (const Compressor::Named& p : comp->parameters()) {
    const std::string key = "param." + p.name;
    if (!f.contains(key)) {
      ADD_FAILURE() << "the fixture has no " << key;
      continue;
    }
    const Tensor want = f.tensor(key);
    EXPECT_EQ(want.shape(), p.value->shape()) << key;
    if (want.shape() != p.value->shape()) continue;
    std::memcpy(p.value->raw(), want.raw(), want.nbytes());
    ++loaded;
  }
  // Every stored parameter must have found its tensor (ae_token only in embedding mode).
  int64_t stored = 0;
  for (const std::string& name : f.names())
    if (name.rfind("param.", 0) == 0 && (c.mode == CompressorMode::kEmbedding || name != "param.ae_token")) ++stored;
  EXPECT_EQ(loaded, stored) << "parameters in the fixture that the compressor does not have";
  return comp;
}

// max|a - b| / max|b|; max|a - b| when b is all zero.
inline double max_relative_error(const Tensor& a, const Tensor& b) {
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a.data<float>()[i]) - b.data<float>()[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b.data<float>()[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

struct TorchComparison {
  double loss = 0, loss_error = 0;
  double worst_grad_error = 0;
  std::string worst_grad;
  double worst_over_allowance = 0;  // max over tensors of error / allowance (< 1 passes)
  int64_t tensors = 0;
};

// How far a float32 result may be from the fixture's (float64) value: `tolerance`, or
// kTorchErrorFactor times the distance of PyTorch's own float32 run where float32
// cannot do better (SmolLM2's ill-conditioned embedding-mode gradients).
constexpr double kTorchErrorFactor = 2.0;
inline double allowance(const SafetensorsFile& f, const std::string& key, double tolerance) {
  return std::max(tolerance, kTorchErrorFactor * f.tensor(key).data<float>()[0]);
}

// One compressor_step on the case's batch with token_weight = 1 / targets, compared
// with the fixture: EXPECTs the loss and every gradient within allowance() (relative,
// max|a - b| / max|b| per tensor), and gradients that are exactly zero in PyTorch (the
// K/V-mode last layer's q_proj LoRA, the AE token in QA) exactly zero here too.
inline TorchComparison compare_with_torch(const LlamaModel& model, const SafetensorsFile& f, const std::string& name,
                                          double tolerance) {
  const TorchCase c = torch_case(name);
  std::unique_ptr<Compressor> comp = torch_compressor(model.config(), f, c);
  const CompressorBatch batch = torch_batch(f, c.regeneration);
  StepOptions options;
  options.token_weight = 1.0f / static_cast<float>(count_targets(batch));
  options.end_id = scalar_id(f, "ids.eos");
  options.ae_token = c.regeneration;
  const CompressorLoss loss = compressor_step(model, *comp, batch, options);

  // XCOMP_TORCH_DUMP_DIR: write xcomp's gradients there, for looking at a disagreement
  // next to the fixture in Python.
  if (const char* dir = std::getenv("XCOMP_TORCH_DUMP_DIR")) {
    std::vector<std::pair<std::string, Tensor>> grads;
    for (const Compressor::Named& p : comp->parameters()) grads.emplace_back(name + ".grad." + p.name, *p.grad);
    const std::string model_name = f.metadata().count("model") ? f.metadata().at("model") : "model";
    write_safetensors(std::string(dir) + "/" + model_name + "_" + name + ".safetensors", grads, {});
  }

  TorchComparison out;
  out.loss = loss.sum;
  const double want_loss = f.tensor(name + ".loss").data<float>()[0];
  out.loss_error = std::fabs(loss.sum - want_loss) / std::fabs(want_loss);
  EXPECT_LT(out.loss_error, allowance(f, name + ".torch_f32_error.loss", tolerance))
      << name << ": loss " << loss.sum << ", PyTorch " << want_loss;
  for (const Compressor::Named& p : comp->parameters()) {
    const std::string key = name + ".grad." + p.name;
    if (!f.contains(key)) {
      ADD_FAILURE() << "the fixture has no " << key;
      continue;
    }
    const Tensor want = f.tensor(key);
    if (want.shape() != p.grad->shape()) {
      ADD_FAILURE() << key << ": shape differs";
      continue;
    }
    ++out.tensors;
    const double err = max_relative_error(*p.grad, want);
    const bool want_zero = std::all_of(want.data<float>(), want.data<float>() + want.numel(),
                                       [](float v) { return v == 0.0f; });
    if (want_zero) {
      EXPECT_EQ(err, 0.0) << key << ": PyTorch's gradient is exactly zero, xcomp's max |g| is " << err;
    } else {
      const double allowed = allowance(f, name + ".torch_f32_error." + p.name, tolerance);
      EXPECT_LT(err, allowed) << key << " (PyTorch float32: "
                              << f.tensor(name + ".torch_f32_error." + p.name).data<float>()[0] << ")";
      out.worst_over_allowance = std::max(out.worst_over_allowance, err / allowed);
    }
    if (err >= out.worst_grad_error) {
      out.worst_grad_error = err;
      out.worst_grad = p.name;
    }
  }
  std::printf(
      "[ torch    ] %-30s loss %.6f rel err %.2e; %lld gradient tensors, worst rel err %.2e (%s), worst "
      "error/allowance %.2f\n",
      name.c_str(), out.loss, out.loss_error, static_cast<long long>(out.tensors), out.worst_grad_error,
      out.worst_grad.c_str(), out.worst_over_allowance);
  return out;
}

}  // namespace xcomp::test
