#include "tests/unit/shard_test_data.h"

#include "io/hdf5_file.h"

namespace xcomp::test {

ShardAttributes test_attributes(const std::string& split) {
  ShardAttributes a;
  a.tokenizer_name = "test tokenizer";
  a.tokenizer_sha256 = kTestTokenizerSha256;
  a.vocab_size = kTestVocab;
  a.bos_id = 1;
  a.eos_id = 2;
  a.source_file = "test-source.txt";
  a.split = split;
  return a;
}

std::vector<int32_t> test_document(int64_t shard, int64_t doc, int64_t max_length) {
  int64_t length = 1 + (7 * doc + 3 * shard) % max_length;
  std::vector<int32_t> tokens;
  for (int64_t t = 0; t < length; ++t) tokens.push_back(static_cast<int32_t>((shard * 31 + doc * 7 + t) % kTestVocab));
  return tokens;
}

std::string test_document_id(int64_t shard, int64_t doc) {
  return "s" + std::to_string(shard) + "-d" + std::to_string(doc);
}

std::string write_test_corpus_shard(const std::string& dir, int64_t shard, int64_t documents, int64_t max_length) {
  std::string path = dir + "/corpus-" + std::to_string(shard) + ".h5";
  CorpusShardWriter writer(path, test_attributes());
  for (int64_t d = 0; d < documents; ++d) {
    writer.add(test_document_id(shard, d), "2021-0" + std::to_string(1 + d % 9) + "-15",
               test_document(shard, d, max_length));
  }
  writer.close();
  return path;
}

QaExample test_qa_example(int64_t shard, int64_t index) {
  QaExample e;
  e.id = "q" + std::to_string(shard) + "-" + std::to_string(index);
  e.context = test_document(shard, index, 30);
  e.question = test_document(shard + 5, index, 8);
  if (index % 4 != 3) {  // every fourth question is unanswerable: no answer, no references
    e.answer = test_document(shard + 9, index, 5);
    e.references = {"answer " + std::to_string(index), "réponse " + std::to_string(index)};
    if (index % 2 == 0) e.references.resize(1);
  }
  return e;
}

std::string write_test_qa_shard(const std::string& dir, int64_t shard, int64_t examples) {
  std::string path = dir + "/qa-" + std::to_string(shard) + ".h5";
  QaShardWriter writer(path, test_attributes("validation"));
  for (int64_t i = 0; i < examples; ++i) writer.add(test_qa_example(shard, i));
  writer.close();
  return path;
}

void write_raw_corpus_shard(const std::string& path, const RawCorpusShard& raw) {
  Hdf5OutputFile file(path);
  const ShardAttributes& a = raw.attributes;
  auto string_attribute = [&](const char* name, const std::string& value) {
    if (raw.skip_attribute != name) file.write_string_attribute(name, value);
  };
  auto int_attribute = [&](const char* name, int64_t value) {
    if (raw.skip_attribute != name) file.write_int_attribute(name, value);
  };
  string_attribute("format", a.format.empty() ? kCorpusShardFormat : a.format);
  int_attribute("format_version", a.format_version);
  string_attribute("tokenizer_name", a.tokenizer_name);
  string_attribute("tokenizer_sha256", a.tokenizer_sha256);
  if (raw.vocab_size_as_string) {
    string_attribute("vocab_size", std::to_string(a.vocab_size));
  } else {
    int_attribute("vocab_size", a.vocab_size);
  }
  int_attribute("bos_id", a.bos_id);
  int_attribute("eos_id", a.eos_id);
  string_attribute("source_file", a.source_file);
  string_attribute("split", a.split);
  if (raw.skip_dataset != "tokens") file.write_int32_dataset("tokens", raw.tokens);
  if (raw.skip_dataset != "doc_offsets") file.write_int64_dataset("doc_offsets", raw.doc_offsets);
  if (raw.skip_dataset != "doc_ids") file.write_string_dataset("doc_ids", raw.doc_ids);
  if (raw.skip_dataset != "doc_dates") file.write_string_dataset("doc_dates", raw.doc_dates);
  file.commit();
}

}  // namespace xcomp::test
