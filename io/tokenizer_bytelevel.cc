#include "io/tokenizer_bytelevel.h"

#include <glog/logging.h>

#include "model/input_error.h"

namespace xcomp {

ByteLevelTokenizer::ByteLevelTokenizer(Parts parts)
    : bpe_(std::move(parts.bpe)),
      token_texts_(std::move(parts.token_texts)),
      pre_(std::move(parts.pre)),
      splitter_(parts.added),
      bos_id_(parts.bos_id),
      eos_id_(parts.eos_id),
      name_(std::move(parts.name)),
      sha256_(std::move(parts.sha256)) {
  CHECK(bpe_ != nullptr);
  CHECK_GE(token_texts_.size(), bpe_->token_bytes().size());
  added_kind_.assign(token_texts_.size(), 0);
  added_content_.resize(token_texts_.size());
  for (const AddedToken& t : parts.added) {
    CHECK(t.id >= 0 && static_cast<size_t>(t.id) < token_texts_.size()) << "added token id " << t.id;
    added_kind_[t.id] = t.special ? 2 : 1;
    has_plain_added_ |= !t.special;
    added_content_[t.id] = t.content;
  }
  for (const char* end_of_turn : {"<|im_end|>", "<|eot_id|>"}) {
    for (const AddedToken& t : parts.added)
      if (t.content == end_of_turn) eot_id_ = t.id;
  }
}

std::vector<int32_t> ByteLevelTokenizer::encode(const std::string& text, bool parse_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3);  // about 4 bytes a token on English text
  auto encode_plain = [&](std::string_view plain) {
    pre_.for_each_piece(plain, name_, [&](std::string_view piece) { bpe_->encode(piece, ids); });
  };
  // Most tokenizers' added tokens are all special: without parse_special there is then
  // nothing to cut out, and the scan for them is skipped.
  if (!parse_special && !has_plain_added_) {
    encode_plain(text);
    return ids;
  }
  for (const auto& segment : splitter_.split(text, parse_special)) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
    } else {
      encode_plain(segment.text);
    }
  }
  return ids;
}

void ByteLevelTokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= vocab_size()) {
    throw_input_error(name_, ": token id ", id, " is outside the vocabulary of ", vocab_size());
  }
}

std::string ByteLevelTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string text;
  const auto& bytes = bpe_->token_bytes();
  for (int32_t id : ids) {
    check_id(id);
    if (added_kind_[id] == 2 && skip_special) continue;
    if (added_kind_[id] != 0) {
      text += added_content_[id];
    } else if (static_cast<size_t>(id) < bytes.size() && !bytes[id].empty()) {
      text += bytes[id];
    } else {
      text += token_texts_[id];  // not expressible in bytes: print as stored
    }
  }
  return text;
}

std::string ByteLevelTokenizer::token_text(int32_t id) const {
  check_id(id);
  return token_texts_[id];
}

}  // namespace xcomp
