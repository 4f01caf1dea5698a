// GPT-2's reversible byte-to-unicode mapping: byte-level BPE vocabularies (GPT-2,
// SmolLM2, LLaMA-3's tokenizer.json) store each token's bytes as printable characters
// so that spaces and control bytes survive in JSON ("Ġ" is byte 0x20).
#pragma once

#include <optional>
#include <string>

namespace xcomp {

// Raw bytes to their GPT-2 unicode spelling (UTF-8).
std::string gpt2_unicode_from_bytes(const std::string& bytes);
// The inverse; nullopt when the text has a character outside the mapping (or is not UTF-8).
std::optional<std::string> bytes_from_gpt2_unicode(const std::string& text);

}  // namespace xcomp
