#include "trainer/eval_report.h"

#include <cstdio>
#include <map>
#include <sstream>

#include "trainer/qa_metrics.h"
#include "trainer/text_metrics.h"

namespace xcomp {

namespace {

const char* const kSystemOrder[] = {"compressed", "full_context", "no_context"};

struct RegenerationTotals {
  int64_t items = 0;
  double rouge1 = 0, rouge2 = 0, rouge_l = 0, exact = 0;
  CorpusBleu bleu;
  void add(const nlohmann::json& r) {
    ++items;
    rouge1 += r.at("rouge1").get<double>();
    rouge2 += r.at("rouge2").get<double>();
    rouge_l += r.at("rouge_l").get<double>();
    exact += r.at("exact_match").get<double>();
    bleu.add(rouge_words(r.at("prediction").get<std::string>()), rouge_words(r.at("reference").get<std::string>()));
  }
  nlohmann::json means() const {
    const double n = static_cast<double>(std::max<int64_t>(items, 1));
    return {{"items", items},         {"rouge1", rouge1 / n},  {"rouge2", rouge2 / n},
            {"rouge_l", rouge_l / n}, {"bleu4", bleu.score()}, {"exact_match", exact / n}};
  }
};

struct QaTotals {
  int64_t items = 0;
  double em = 0, f1 = 0, em_strict = 0, f1_strict = 0;
  void add(const nlohmann::json& r) {
    ++items;
    em += r.at("em").get<double>();
    f1 += r.at("f1").get<double>();
    em_strict += r.at("em_strict").get<double>();
    f1_strict += r.at("f1_strict").get<double>();
  }
  nlohmann::json means() const {
    const double n = static_cast<double>(std::max<int64_t>(items, 1));
    return {
        {"items", items}, {"em", em / n}, {"f1", f1 / n}, {"em_strict", em_strict / n}, {"f1_strict", f1_strict / n}};
  }
};

// compressed / full_context for every metric but the item count (null when the full
// context scored 0).
nlohmann::json retention(const nlohmann::json& systems) {
  nlohmann::json out = nlohmann::json::object();
  if (!systems.contains("compressed") || !systems.contains("full_context")) return out;
  for (const auto& [key, value] : systems.at("compressed").items()) {
    if (key == "items") continue;
    const double full = systems.at("full_context").at(key).get<double>();
    out[key] = full > 0 ? nlohmann::json(value.get<double>() / full) : nlohmann::json(nullptr);
  }
  return out;
}

template <typename Totals>
nlohmann::json systems_json(const std::map<std::string, Totals>& by_system) {
  nlohmann::json systems = nlohmann::json::object();
  for (const char* name : kSystemOrder) {
    auto it = by_system.find(name);
    if (it != by_system.end()) systems[name] = it->second.means();
  }
  return systems;
}

std::string fixed(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3f", value);
  return buffer;
}

std::string cell(const nlohmann::json& value) { return value.is_null() ? "-" : fixed(value.get<double>()); }

}  // namespace

nlohmann::json regeneration_record(int64_t item, const std::string& id, const std::string& system, int64_t text_len,
                                   const std::string& reference, const std::string& prediction, bool exact_tokens) {
  const RougeScores rouge = rouge_scores(rouge_words(prediction), rouge_words(reference));
  return {{"item", item},
          {"id", id},
          {"system", system},
          {"text_len", text_len},
          {"reference", reference},
          {"prediction", prediction},
          {"rouge1", rouge.rouge1},
          {"rouge2", rouge.rouge2},
          {"rouge_l", rouge.rouge_l},
          {"exact_match", exact_tokens ? 1.0 : 0.0}};
}

nlohmann::json qa_record(int64_t item, const std::string& id, const std::string& dataset, const std::string& system,
                         const std::string& question, const std::string& prediction,
                         const std::vector<std::string>& references, bool context_truncated) {
  const AnswerScore squad = squad_answer_score(prediction, references);
  const AnswerScore strict = strict_answer_score(prediction, references);
  return {{"item", item},
          {"id", id},
          {"dataset", dataset},
          {"system", system},
          {"question", question},
          {"prediction", prediction},
          {"references", references},
          {"em", squad.exact_match},
          {"f1", squad.f1},
          {"em_strict", strict.exact_match},
          {"f1_strict", strict.f1},
          {"context_truncated", context_truncated}};
}

nlohmann::json regeneration_report(const nlohmann::json& header, const std::vector<nlohmann::json>& records) {
  std::map<int64_t, std::map<std::string, RegenerationTotals>> groups;
  for (const auto& r : records) groups[r.at("text_len").get<int64_t>()][r.at("system").get<std::string>()].add(r);
  nlohmann::json report = header;
  report["task"] = "regeneration";
  report["results"] = nlohmann::json::array();
  const double n = header.at("num_tokens").get<double>();
  for (const auto& [text_len, by_system] : groups) {
    nlohmann::json group = {{"text_len", text_len}, {"compression_ratio", text_len / n}};
    group["systems"] = systems_json(by_system);
    group["retention"] = retention(group["systems"]);
    report["results"].push_back(group);
  }
  return report;
}

nlohmann::json qa_report(const nlohmann::json& header, const std::vector<nlohmann::json>& records) {
  std::map<std::string, std::map<std::string, QaTotals>> groups;
  std::map<std::string, QaTotals> all;
  for (const auto& r : records) {
    groups[r.at("dataset").get<std::string>()][r.at("system").get<std::string>()].add(r);
    all[r.at("system").get<std::string>()].add(r);
  }
  nlohmann::json report = header;
  report["task"] = "qa";
  report["results"] = nlohmann::json::array();
  auto add_group = [&](const std::string& name, const std::map<std::string, QaTotals>& by_system) {
    nlohmann::json group = {{"dataset", name}};
    group["systems"] = systems_json(by_system);
    group["retention"] = retention(group["systems"]);
    report["results"].push_back(group);
  };
  for (const auto& [name, by_system] : groups) add_group(name, by_system);
  if (groups.size() > 1) add_group("all", all);
  return report;
}

std::string eval_json_text(const nlohmann::json& value, int indent) {
  return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string report_markdown(const nlohmann::json& report) {
  std::ostringstream out;
  const bool regeneration = report.at("task") == "regeneration";
  const std::vector<std::string> metrics =
      regeneration ? std::vector<std::string>{"rouge1", "rouge2", "rouge_l", "bleu4", "exact_match"}
                   : std::vector<std::string>{"em", "f1", "em_strict", "f1_strict"};
  out << (regeneration ? "| text length | N | ratio | system | items |" : "| dataset | system | items |");
  for (const auto& m : metrics) out << " " << m << " |";
  out << "\n|" << (regeneration ? "---|---|---|---|---|" : "---|---|---|");
  for (size_t i = 0; i < metrics.size(); ++i) out << "---|";
  out << "\n";
  for (const auto& group : report.at("results")) {
    std::vector<std::pair<std::string, nlohmann::json>> rows;
    for (const auto& [system, values] : group.at("systems").items()) rows.emplace_back(system, values);
    if (!group.at("retention").empty()) rows.emplace_back("retention", group.at("retention"));
    for (const auto& [system, values] : rows) {
      if (regeneration)
        out << "| " << group.at("text_len").get<int64_t>() << " | " << report.at("num_tokens").get<int64_t>() << " | "
            << fixed(group.at("compression_ratio").get<double>()) << " | ";
      else
        out << "| " << group.at("dataset").get<std::string>() << " | ";
      out << system << " | " << (values.contains("items") ? std::to_string(values.at("items").get<int64_t>()) : "")
          << " |";
      for (const auto& m : metrics) out << " " << cell(values.contains(m) ? values.at(m) : nlohmann::json()) << " |";
      out << "\n";
    }
  }
  return out.str();
}

}  // namespace xcomp
