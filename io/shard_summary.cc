// read_shard_summary: a shard's attributes and sample count without loading its data.
#include "io/hdf5_file.h"
#include "io/shard_parts.h"
#include "io/shards.h"
#include "model/input_error.h"

namespace xcomp {

ShardSummary read_shard_summary(const std::string& path, const ShardExpectations& expect) {
  Hdf5InputFile file(path);
  std::string format = file.read_string_attribute("format");
  if (format != kCorpusShardFormat && format != kQaShardFormat) {
    throw_input_error(path, ": attribute 'format' is '", format, "', expected '", kCorpusShardFormat, "' or '",
                      kQaShardFormat, "'");
  }
  ShardSummary summary;
  summary.attributes = read_shard_attributes(file, format, expect);
  // One offset more than there are samples; open() checks the offsets themselves.
  const char* offsets = format == kCorpusShardFormat ? "doc_offsets" : "context_offsets";
  int64_t entries = file.dataset_length(offsets);
  if (entries < 1) throw_input_error(path, ": dataset '", offsets, "' is empty, expected at least one offset (0)");
  summary.samples = entries - 1;
  return summary;
}

}  // namespace xcomp
