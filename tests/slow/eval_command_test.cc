// xcomp eval, compress, answer, regenerate and export-peft end to end on stories260K
// with compressors trained for two steps: the reports are well formed, the metrics
// agree with the predictions file, the .xkv path decodes as eval does, and a prompt is
// refused by another model or checkpoint; a mode-none run (the full-context upper
// bound) is evaluated on QA and refused by compress.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/safetensors.h"
#include "tests/test_support.h"
#include "trainer/text_metrics.h"

namespace xcomp {
namespace {

std::string quoted(const std::string& s) { return "'" + s + "'"; }

class EvalCommand : public ::testing::Test {
 protected:
  // Shards and two tiny runs (K/V and embedding mode, N = 4, 32-token texts), made once.
  static void SetUpTestSuite() {
    // One thread for the commands started here (compress, answer and regenerate use every
    // core by default): on a busy machine OpenMP's spinning threads would slow them tenfold.
    ::setenv("OMP_NUM_THREADS", "1", 1);
    ::setenv("OPENBLAS_NUM_THREADS", "1", 1);
    dir_ = new std::string(test::temp_dir("eval"));
    const std::string tokenizer = test::fixture("stories260K/tok512.model");
    test::CommandResult prep = test::run_xcomp(
        "prepare --format text --input " + quoted(test::fixture("tinystories/tinystories_sample.txt")) + " --out " +
        quoted(*dir_ + "/data") + " --tokenizer " + quoted(tokenizer) + " --split-by hash --test-fraction 0.2");
    ASSERT_EQ(prep.exit_code, 0) << prep.err;
    test::CommandResult qa = test::run_xcomp("prepare --format babi --input " +
                                             quoted(test::fixture("babi/qa1_single-supporting-fact_test.txt")) +
                                             " --out " + quoted(*dir_ + "/qa") + " --tokenizer " + quoted(tokenizer));
    ASSERT_EQ(qa.exit_code, 0) << qa.err;
    for (const char* mode : {"kv", "embedding"}) {
      test::CommandResult run = test::run_xcomp(
          "train --config " + quoted(test::source_dir() + "/configs/stories260k-regen-" + mode + ".yaml") +
          " run_dir=" + quoted(*dir_ + "/run-" + mode) +
          " resume= threads=1 train.steps=2 train.warmup_steps=1 eval.every=0 data.micro_batch=2 "
          "compressor.num_tokens=4 compressor.max_text_len=32 log.progress=never model.path=" +
          quoted(test::fixture("stories260K/stories260K.bin")) + " model.tokenizer=" + quoted(tokenizer) +
          " 'data.train=[\"" + *dir_ + "/data/train-*.h5\"]'");
      ASSERT_EQ(run.exit_code, 0) << run.err;
    }
    test::CommandResult none = test::run_xcomp(
        "train --config " + quoted(test::source_dir() + "/configs/stories260k-babi-qa-none.yaml") +
        " run_dir=" + quoted(*dir_ + "/run-none") +
        " resume= threads=1 train.steps=2 train.warmup_steps=1 eval.every=0 data.micro_batch=2 log.progress=never "
        "model.path=" + quoted(test::fixture("stories260K/stories260K.bin")) + " model.tokenizer=" + quoted(tokenizer) +
        " 'data.train=[\"" + *dir_ + "/qa/*.h5\"]'");
    ASSERT_EQ(none.exit_code, 0) << none.err;
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::vector<nlohmann::json> read_lines(const std::string& path) {
    std::istringstream lines(test::read_file(path));
    std::vector<nlohmann::json> out;
    for (std::string line; std::getline(lines, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  }

  static std::string* dir_;
};
std::string* EvalCommand::dir_ = nullptr;

TEST_F(EvalCommand, RegenerationReportAgreesWithItsPredictions) {
  const std::string out = *dir_ + "/eval-kv";
  test::CommandResult r = test::run_xcomp("eval --checkpoint " + quoted(*dir_ + "/run-kv") +
                                          " --task regeneration --data " + quoted(*dir_ + "/data/test-*.h5") +
                                          " --text-lengths 16,32 --limit 3 --threads 1 --out " + quoted(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json report = nlohmann::json::parse(test::read_file(out + "/report.json"));
  EXPECT_EQ(report["task"], "regeneration");
  EXPECT_EQ(report["mode"], "kv");
  EXPECT_EQ(report["num_tokens"], 4);
  EXPECT_EQ(report["device"], "cpu");
  EXPECT_EQ(report["batch"], 1);  // what may change the last bits of the numbers, with the device
  EXPECT_EQ(report["limit"], 3);  // with the data, which items the numbers are over
  ASSERT_EQ(report["results"].size(), 2u);
  EXPECT_EQ(report["results"][0]["text_len"], 16);
  EXPECT_DOUBLE_EQ(report["results"][1]["compression_ratio"].get<double>(), 8.0);
  EXPECT_EQ(test::read_file(out + "/report.md"), r.out);
  EXPECT_NE(r.out.find("| 32 | 4 | 8.000 | compressed | 3 |"), std::string::npos) << r.out;

  const std::vector<nlohmann::json> records = read_lines(out + "/predictions.jsonl");
  ASSERT_EQ(records.size(), 2u * 3u * 3u);  // lengths x items x systems
  // Means, per (length, system), recomputed from the records and their texts.
  std::map<std::pair<int64_t, std::string>, std::vector<const nlohmann::json*>> groups;
  for (const auto& rec : records) {
    const RougeScores rouge = rouge_scores(rouge_words(rec["prediction"]), rouge_words(rec["reference"]));
    EXPECT_DOUBLE_EQ(rec["rouge_l"].get<double>(), rouge.rouge_l);
    EXPECT_DOUBLE_EQ(rec["rouge1"].get<double>(), rouge.rouge1);
    if (rec["exact_match"].get<double>() == 1.0) {
      EXPECT_EQ(rec["prediction"], rec["reference"]);
    }
    groups[{rec["text_len"].get<int64_t>(), rec["system"].get<std::string>()}].push_back(&rec);
  }
  for (const auto& group : report["results"]) {
    for (const auto& [system, metrics] : group["systems"].items()) {
      const auto& members = groups[{group["text_len"].get<int64_t>(), system}];
      ASSERT_EQ(metrics["items"].get<size_t>(), members.size());
      double rouge_l = 0;
      CorpusBleu bleu;
      for (const auto* m : members) {
        rouge_l += (*m)["rouge_l"].get<double>();
        bleu.add(rouge_words((*m)["prediction"]), rouge_words((*m)["reference"]));
      }
      EXPECT_NEAR(metrics["rouge_l"].get<double>(), rouge_l / members.size(), 1e-12);
      EXPECT_NEAR(metrics["bleu4"].get<double>(), bleu.score(), 1e-12);
    }
    const double full = group["systems"]["full_context"]["rouge_l"].get<double>();
    if (full > 0) {
      EXPECT_NEAR(group["retention"]["rouge_l"].get<double>(),
                  group["systems"]["compressed"]["rouge_l"].get<double>() / full, 1e-12);
    }
  }
}

TEST_F(EvalCommand, TwoRanksWriteWhatOneRankWrites) {
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0) GTEST_SKIP() << "no mpirun";
  const std::string args = "eval --checkpoint " + quoted(*dir_ + "/run-embedding") + " --task regeneration --data " +
                           quoted(*dir_ + "/data/test-*.h5") + " --text-lengths 16,32 --limit 5 --threads 1 --out ";
  test::CommandResult one = test::run_xcomp(args + quoted(*dir_ + "/ranks-1"));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const std::string log = *dir_ + "/ranks-2.log";
  const int status =
      std::system(("mpirun -np 2 --allow-run-as-root --oversubscribe --bind-to none " + quoted(test::xcomp_binary()) +
                   " " + args + quoted(*dir_ + "/ranks-2") + " >" + quoted(*dir_ + "/ranks-2.md") + " 2>" + quoted(log))
                      .c_str());
  ASSERT_EQ(status, 0) << test::read_file(log);
  // Each rank evaluated its share (5 items a length: 3 and 2), rank 0 wrote the whole.
  EXPECT_NE(test::read_file(log).find("evaluated 3/3 items"), std::string::npos) << test::read_file(log);
  for (const char* file : {"/predictions.jsonl", "/report.json", "/report.md"})
    EXPECT_EQ(test::read_file(*dir_ + "/ranks-2" + file), test::read_file(*dir_ + "/ranks-1" + file)) << file;
  EXPECT_EQ(test::read_file(*dir_ + "/ranks-2.md"), one.out);
}

// --batch decodes several items together; the records come out in the same order with,
// on these items, the same predictions (a batch may round differently in the last bits,
// but no near-tie falls on these). 5 items in batches of 3 leave a partial last batch.
TEST_F(EvalCommand, BatchedDecodingWritesWhatOneAtATimeWrites) {
  struct Case {
    std::string run, task, data, extra;
  };
  const std::vector<Case> cases = {
      {"run-kv", "regeneration", "/data/test-*.h5", " --text-lengths 16,32"},
      {"run-embedding", "regeneration", "/data/test-*.h5", " --text-lengths 16"},
      {"run-embedding", "qa", "/qa/*.h5", " --max-new-tokens 6"},
      {"run-none", "qa", "/qa/*.h5", " --max-new-tokens 6"}};
  for (const Case& c : cases) {
    std::map<int, std::string> predictions;
    for (int batch : {1, 3}) {
      const std::string out = *dir_ + "/batch-" + c.run + "-" + c.task + "-" + std::to_string(batch);
      test::CommandResult r = test::run_xcomp("eval --checkpoint " + quoted(*dir_ + "/" + c.run) + " --task " + c.task +
                                              " --data " + quoted(*dir_ + c.data) + c.extra + " --limit 5 --batch " +
                                              std::to_string(batch) + " --threads 1 --out " + quoted(out));
      ASSERT_EQ(r.exit_code, 0) << r.err;
      predictions[batch] = test::read_file(out + "/predictions.jsonl");
      EXPECT_EQ(nlohmann::json::parse(test::read_file(out + "/report.json"))["batch"], batch);
    }
    EXPECT_EQ(predictions[3], predictions[1]) << c.run << " " << c.task;
    EXPECT_FALSE(predictions[1].empty());
  }
}

// --baseline-prompt chat needs a tokenizer with a chat format (stories260K's has none):
// one clear error, nothing written; an unknown value is refused the same way.
TEST_F(EvalCommand, ChatBaselinePromptNeedsAChatFormat) {
  const std::string base = "eval --checkpoint " + quoted(*dir_ + "/run-kv") + " --task qa --data " +
                           quoted(*dir_ + "/qa/*.h5") + " --limit 2 --threads 1 --out " + quoted(*dir_ + "/chat");
  test::CommandResult chat = test::run_xcomp(base + " --baseline-prompt chat");
  EXPECT_NE(chat.exit_code, 0);
  EXPECT_NE(chat.err.find("--baseline-prompt chat: the tokenizer of"), std::string::npos) << chat.err;
  EXPECT_NE(chat.err.find("no known chat format"), std::string::npos) << chat.err;
  test::CommandResult bogus = test::run_xcomp(base + " --baseline-prompt fancy");
  EXPECT_NE(bogus.exit_code, 0);
  EXPECT_NE(bogus.err.find("--baseline-prompt: expected plain or chat, got 'fancy'"), std::string::npos) << bogus.err;
  EXPECT_FALSE(std::filesystem::exists(*dir_ + "/chat/report.json"));
}

TEST_F(EvalCommand, QaReportScoresEveryQuestionWithBothMetricFamilies) {
  const std::string out = *dir_ + "/eval-qa";
  test::CommandResult r = test::run_xcomp(
      "eval --checkpoint " + quoted(*dir_ + "/run-embedding/trainable.safetensors") + " --task qa --data " +
      quoted(*dir_ + "/qa/*.h5") + " --limit 4 --max-new-tokens 4 --threads 1 --out " + quoted(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json report = nlohmann::json::parse(test::read_file(out + "/report.json"));
  EXPECT_EQ(report["task"], "qa");
  EXPECT_EQ(report["mode"], "embedding");
  const std::vector<nlohmann::json> records = read_lines(out + "/predictions.jsonl");
  ASSERT_EQ(records.size(), 4u * 3u);
  double em = 0;
  for (const auto& rec : records) {
    for (const char* key : {"id", "question", "prediction", "references", "em", "f1", "em_strict", "f1_strict"})
      EXPECT_TRUE(rec.contains(key)) << key;
    EXPECT_LE(rec["em"].get<double>(), rec["f1"].get<double>());
    if (rec["system"] == "compressed") em += rec["em"].get<double>();
  }
  ASSERT_EQ(report["results"].size(), 1u);
  EXPECT_NEAR(report["results"][0]["systems"]["compressed"]["em"].get<double>(), em / 4, 1e-12);
}

TEST_F(EvalCommand, CompressedPromptFileDecodesAsEvalDoes) {
  for (const char* mode : {"kv", "embedding"}) {
    const std::string run = *dir_ + "/run-" + mode, out = *dir_ + "/xkv-" + mode;
    test::CommandResult e = test::run_xcomp(
        "eval --checkpoint " + quoted(run) + " --task regeneration --data " + quoted(*dir_ + "/data/test-*.h5") +
        " --text-lengths 32 --limit 1 --systems compressed --threads 1 --out " + quoted(out));
    ASSERT_EQ(e.exit_code, 0) << e.err;
    const nlohmann::json record = read_lines(out + "/predictions.jsonl").at(0);
    // The same text through a file and the .xkv path must regenerate what eval did.
    test::write_file(out + "/text.txt", record["reference"].get<std::string>());
    const std::string model = quoted(test::fixture("stories260K/stories260K.bin")) + " --tokenizer " +
                              quoted(test::fixture("stories260K/tok512.model"));
    test::CommandResult c = test::run_xcomp("compress --checkpoint " + quoted(run) + " --text " +
                                            quoted(out + "/text.txt") + " --out " + quoted(out + "/doc.xkv"));
    ASSERT_EQ(c.exit_code, 0) << c.err;
    const SafetensorsFile xkv = SafetensorsFile::open(out + "/doc.xkv");
    EXPECT_EQ(xkv.metadata().at("mode"), mode);
    EXPECT_EQ(xkv.metadata().at("num_tokens"), "4");
    EXPECT_EQ(xkv.metadata().at("checkpoint_sha256").size(), 64u);
    test::CommandResult g = test::run_xcomp("regenerate --model " + model + " --prompt " + quoted(out + "/doc.xkv") +
                                            " --max-new-tokens 33");
    ASSERT_EQ(g.exit_code, 0) << g.err;
    // The decoded text tokenises back to the shard's 32 tokens, so both paths saw one input.
    ASSERT_EQ(xkv.metadata().at("text_tokens"), "32");
    EXPECT_EQ(g.out, record["prediction"].get<std::string>() + "\n") << mode;
    test::CommandResult a =
        test::run_xcomp("answer --model " + model + " --prompt " + quoted(out + "/doc.xkv") +
                        " --question 'Who is in the story?' --max-new-tokens 8 --checkpoint " + quoted(run));
    EXPECT_EQ(a.exit_code, 0) << a.err;
  }
}

TEST_F(EvalCommand, PromptForAnotherModelOrCheckpointIsRefused) {
  const std::string out = *dir_ + "/refuse";
  std::filesystem::create_directories(out);
  test::write_file(out + "/text.txt", "Once upon a time, there was a little girl named Lily.");
  test::CommandResult c = test::run_xcomp("compress --checkpoint " + quoted(*dir_ + "/run-kv") + " --text " +
                                          quoted(out + "/text.txt") + " --out " + quoted(out + "/doc.xkv"));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  // Another model: stories260K converted, with one weight changed.
  test::CommandResult conv =
      test::run_xcomp("convert llama2c " + quoted(test::fixture("stories260K/stories260K.bin")) + " " +
                      quoted(out + "/model") + " --tokenizer " + quoted(test::fixture("stories260K/tok512.model")));
  ASSERT_EQ(conv.exit_code, 0) << conv.err;
  test::CommandResult same = test::run_xcomp("answer --model " + quoted(out + "/model") + " --prompt " +
                                             quoted(out + "/doc.xkv") + " --question 'Who?' --max-new-tokens 2");
  EXPECT_EQ(same.exit_code, 0) << "the converted directory is the same model: " << same.err;
  {
    std::fstream f(out + "/model/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-2, std::ios::end);
    f.put(0x3f);
  }
  test::CommandResult other = test::run_xcomp("answer --model " + quoted(out + "/model") + " --prompt " +
                                              quoted(out + "/doc.xkv") + " --question 'Who?'");
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_NE(other.err.find("was compressed with another model"), std::string::npos) << other.err;
  test::CommandResult checkpoint =
      test::run_xcomp("regenerate --model " + quoted(test::fixture("stories260K/stories260K.bin")) + " --tokenizer " +
                      quoted(test::fixture("stories260K/tok512.model")) + " --prompt " + quoted(out + "/doc.xkv") +
                      " --checkpoint " + quoted(*dir_ + "/run-embedding"));
  EXPECT_EQ(checkpoint.exit_code, 1);
  EXPECT_NE(checkpoint.err.find("was compressed by another checkpoint"), std::string::npos) << checkpoint.err;
  test::CommandResult not_xkv = test::run_xcomp("regenerate --model " + quoted(out + "/model") + " --prompt " +
                                                quoted(out + "/model/model.safetensors"));
  EXPECT_EQ(not_xkv.exit_code, 1);
  EXPECT_NE(not_xkv.err.find("not a compressed prompt"), std::string::npos) << not_xkv.err;
}

TEST_F(EvalCommand, ExportPeftWritesAdapterConfigTensorsAndTokens) {
  const std::string out = *dir_ + "/peft";
  test::CommandResult r = test::run_xcomp("export-peft --checkpoint " + quoted(*dir_ + "/run-embedding") + " --out " +
                                          quoted(out) + " --base-model karpathy/tinyllamas/stories260K");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json config = nlohmann::json::parse(test::read_file(out + "/adapter_config.json"));
  EXPECT_EQ(config["peft_type"], "LORA");
  EXPECT_EQ(config["r"], 16);
  EXPECT_EQ(config["lora_alpha"], 32.0);
  EXPECT_EQ(config["target_modules"], nlohmann::json({"q_proj", "v_proj"}));
  EXPECT_EQ(config["base_model_name_or_path"], "karpathy/tinyllamas/stories260K");
  const SafetensorsFile adapter = SafetensorsFile::open(out + "/adapter_model.safetensors");
  EXPECT_EQ(adapter.names().size(), 5u * 2u * 2u);  // layers x targets x (A, B)
  EXPECT_EQ(adapter.shape("base_model.model.model.layers.4.self_attn.v_proj.lora_B.weight"), (Shape{32, 16}));
  EXPECT_EQ(adapter.shape("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"), (Shape{16, 64}));
  const SafetensorsFile tokens = SafetensorsFile::open(out + "/compression_tokens.safetensors");
  EXPECT_EQ(tokens.shape("compression_tokens"), (Shape{4, 64}));
  EXPECT_EQ(tokens.shape("ae_token"), (Shape{1, 64}));
  const nlohmann::json compressor = nlohmann::json::parse(test::read_file(out + "/xcomp_compressor.json"));
  EXPECT_EQ(compressor["mode"], "embedding");
  EXPECT_EQ(compressor["num_tokens"], 4);
}

// A mode-none checkpoint answers with the whole context and its LoRA; the report says
// so (mode none, no tokens) beside the same two baselines. It has no compressed prompt to
// write and no regeneration to score; its PEFT export is the adapter alone.
TEST_F(EvalCommand, ModeNoneCheckpointIsEvaluatedOnQaOnly) {
  const std::string out = *dir_ + "/eval-none";
  test::CommandResult r = test::run_xcomp("eval --checkpoint " + quoted(*dir_ + "/run-none") + " --task qa --data " +
                                          quoted(*dir_ + "/qa/*.h5") +
                                          " --limit 4 --max-new-tokens 4 --threads 1 --out " + quoted(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("mode none (no compression"), std::string::npos) << r.err;
  const nlohmann::json report = nlohmann::json::parse(test::read_file(out + "/report.json"));
  EXPECT_EQ(report["task"], "qa");
  EXPECT_EQ(report["mode"], "none");
  EXPECT_EQ(report["num_tokens"], 0);
  ASSERT_EQ(report["results"].size(), 1u);
  for (const char* system : {"compressed", "full_context", "no_context"})
    EXPECT_EQ(report["results"][0]["systems"][system]["items"], 4) << system;
  EXPECT_EQ(read_lines(out + "/predictions.jsonl").size(), 4u * 3u);
  EXPECT_EQ(test::read_file(out + "/report.md"), r.out);

  test::write_file(*dir_ + "/none-text.txt", "Mary moved to the bathroom.");
  test::CommandResult c = test::run_xcomp("compress --checkpoint " + quoted(*dir_ + "/run-none") + " --text " +
                                          quoted(*dir_ + "/none-text.txt") + " --out " + quoted(*dir_ + "/none.xkv"));
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_NE(c.err.find("compressor.mode none, which compresses nothing"), std::string::npos) << c.err;
  EXPECT_FALSE(std::filesystem::exists(*dir_ + "/none.xkv"));
  test::CommandResult regeneration = test::run_xcomp(
      "eval --checkpoint " + quoted(*dir_ + "/run-none") + " --task regeneration --data " +
      quoted(*dir_ + "/data/test-*.h5") + " --limit 1 --threads 1 --out " + quoted(*dir_ + "/eval-none-regen"));
  EXPECT_EQ(regeneration.exit_code, 1);
  EXPECT_NE(regeneration.err.find("for QA only"), std::string::npos) << regeneration.err;

  test::CommandResult peft = test::run_xcomp("export-peft --checkpoint " + quoted(*dir_ + "/run-none") + " --out " +
                                             quoted(*dir_ + "/peft-none"));
  ASSERT_EQ(peft.exit_code, 0) << peft.err;
  EXPECT_EQ(SafetensorsFile::open(*dir_ + "/peft-none/adapter_model.safetensors").names().size(), 5u * 2u * 2u);
  EXPECT_FALSE(std::filesystem::exists(*dir_ + "/peft-none/compression_tokens.safetensors"));
  const nlohmann::json compressor =
      nlohmann::json::parse(test::read_file(*dir_ + "/peft-none/xcomp_compressor.json"));
  EXPECT_EQ(compressor["mode"], "none");
  EXPECT_EQ(compressor["num_tokens"], 0);
}

}  // namespace
}  // namespace xcomp
