// Evaluation results: one record per (item, system) -- what the predictions JSON-lines
// file holds -- and the report built from those records alone, so that a report
// gathered from several ranks is the same as one computed in a single process, and
// anyone can recompute it from the predictions file.
//
// Regeneration record: item, id, system, text_len, reference, prediction, rouge1,
// rouge2, rouge_l, exact_match (the regenerated tokens are exactly the text's).
// QA record: item, id, dataset, system, question, prediction, references, em, f1,
// em_strict, f1_strict (trainer/qa_metrics.h), context_truncated.
//
// The report groups records by text length (regeneration) or dataset (QA, plus "all"),
// gives each system's mean metrics (corpus BLEU-4 for regeneration, over the group's
// texts), and the retention of each metric: compressed / full_context.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace xcomp {

// A regeneration record's metrics from the texts (ROUGE and BLEU over rouge_words).
nlohmann::json regeneration_record(int64_t item, const std::string& id, const std::string& system, int64_t text_len,
                                   const std::string& reference, const std::string& prediction, bool exact_tokens);
nlohmann::json qa_record(int64_t item, const std::string& id, const std::string& dataset, const std::string& system,
                         const std::string& question, const std::string& prediction,
                         const std::vector<std::string>& references, bool context_truncated);

// `header` (checkpoint, model, mode, N, ...) is copied into the report; it must hold
// "num_tokens" for regeneration reports (the compression ratio is text_len / N).
nlohmann::json regeneration_report(const nlohmann::json& header, const std::vector<nlohmann::json>& records);
nlohmann::json qa_report(const nlohmann::json& header, const std::vector<nlohmann::json>& records);

// JSON text of a record or a report. Model output can be invalid UTF-8 (a byte-fallback
// token cut mid-character); such bytes become U+FFFD rather than an exception.
std::string eval_json_text(const nlohmann::json& value, int indent = -1);

// A Markdown table of a report (either kind), one row per group and system.
std::string report_markdown(const nlohmann::json& report);

}  // namespace xcomp
