// What `xcomp prepare` reads: documents (for corpus shards) and questions grouped by
// context (for QA shards), from the input formats it knows. Every reader streams its
// input (the SQuAD JSON file excepted: it is one JSON document and is read whole) and
// remembers where each record came from, so errors and ids can name file and line.
//
// Text conventions, the same for every format: a document's text is trimmed of
// surrounding whitespace (spaces, tabs, newlines) and its internal newlines are kept as
// they are, including arXiv's hard line wrapping, because the tokenizer sees newlines
// as ordinary text and rewrapping would invent a layout the source never had. A
// document that is empty after trimming is skipped and counted (empty_documents()).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/input_error.h"

namespace xcomp {

// A record that is malformed on its own (bad JSON, a missing field, a wrong type, a bad
// bAbI line). The reader has already moved past it, so with --on-error=skip the caller
// counts it and reads on. Any other InputError (unreadable or truncated input) ends the
// input.
class MalformedRecord : public InputError {
 public:
  using InputError::InputError;
};

struct SourceDocument {
  std::string id;
  std::string date;  // first-version date YYYY-MM-DD, "" when the format has none
  std::string text;
  int64_t line = 0;  // where the record starts in its file
};

struct SourceQuestion {
  std::string id;
  std::string context;
  std::string question;
  // Every reference answer; the first is the training target. Empty: unanswerable.
  std::vector<std::string> answers;
  int64_t line = 0;
};

// Questions that share a context (a SQuAD paragraph, an MRQA line, a bAbI story). A
// split assigns whole groups, so no context is seen in training and in testing.
struct SourceQaGroup {
  std::string key;   // what --split-by hash hashes: the context text, or the bAbI story
  int64_t line = 0;  // 0 where the format has no lines (SQuAD JSON)
  std::vector<SourceQuestion> questions;
};

class DocumentSource {
 public:
  virtual ~DocumentSource() = default;
  // The next document; false at the end. Throws MalformedRecord (skippable) or
  // InputError (fatal).
  virtual bool next(SourceDocument& document) = 0;
  virtual int64_t bytes_consumed() const = 0;
  virtual int64_t empty_documents() const = 0;
};

class QaSource {
 public:
  virtual ~QaSource() = default;
  virtual bool next(SourceQaGroup& group) = 0;
  virtual int64_t bytes_consumed() const = 0;
};

// arXiv metadata JSON lines (Kaggle snapshot). Text: the abstract, or with_title
// "title\nabstract"; id: "id"; date: versions[0].created as YYYY-MM-DD, else update_date.
std::unique_ptr<DocumentSource> open_arxiv_source(const std::string& path, bool with_title);
// Plain text, documents separated by `separator` (which may not contain a newline). A
// final document without a trailing separator still counts (a cut-off file's last
// piece is a document like any other: prepare cannot tell it is incomplete). Ids are
// "<file name>:<line where the document starts>".
std::unique_ptr<DocumentSource> open_text_source(const std::string& path, const std::string& separator);
// JSON lines with the text in `text_field`; ids from `id_field` (a string or an
// integer) or, without one, "<file name>:<line>".
std::unique_ptr<DocumentSource> open_jsonl_source(const std::string& path, const std::string& text_field,
                                                  const std::string& id_field);

// SQuAD v1.1/v2.0 JSON (data[].paragraphs[].context / qas[]). Read whole: the format is
// one JSON document. Unanswerable v2.0 questions (is_impossible) get no answers; their
// plausible_answers are not references and are left out.
std::unique_ptr<QaSource> open_squad_source(const std::string& path);
// MRQA JSON lines: a header line, then one context a line with qas[] (question, qid,
// answers[]).
std::unique_ptr<QaSource> open_mrqa_source(const std::string& path);
// bAbI v1.2 task files. Each story is a group; each question's context is the story's
// statements before it (earlier questions left out), joined with "\n" as the file
// lists them, without their line numbers. Question ids are "<file name>:<line>".
std::unique_ptr<QaSource> open_babi_source(const std::string& path);

// The conventions above, shared by the readers.
std::string trim_whitespace(const std::string& text);  // space, tab, CR, LF, FF, VT
// The last component of a path: ids built from it stay the same wherever the input lives.
std::string file_name_of(const std::string& path);
// "<path>:<line>", how errors name a record.
std::string record_location(const std::string& path, int64_t line);

}  // namespace xcomp
