#include "tokenizer/spm.h"

#include <algorithm>
#include <cstring>

#include "tokenizer/unicode.h"

namespace wren {
namespace {

// The heap's top is the best candidate: highest score, then leftmost.
bool worse(const SpmWorkspace::Candidate& a, const SpmWorkspace::Candidate& b) {
  return a.score != b.score ? a.score < b.score : a.left > b.left;
}

}  // namespace

void spm_escape_spaces(const char* text, size_t n, std::string* out) {
  out->reserve(out->size() + n);
  for (size_t i = 0; i < n; ++i) {
    if (text[i] == ' ') {
      out->append(kSpmSpace);
    } else {
      out->push_back(text[i]);
    }
  }
}

std::string spm_unescape_spaces(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  const size_t k = std::strlen(kSpmSpace);
  size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, k, kSpmSpace) == 0) {
      out.push_back(' ');
      i += k;
    } else {
      out.push_back(text[i++]);
    }
  }
  return out;
}

SpmModel::SpmModel(const std::unordered_map<std::string, int32_t>& token_to_id, std::vector<float> scores,
                   const std::array<int32_t, 256>& byte_tokens, int32_t unk)
    : token_to_id_(&token_to_id), scores_(std::move(scores)), byte_tokens_(byte_tokens), unk_(unk) {
  const size_t k = std::strlen(kSpmSpace);
  for (const auto& entry : token_to_id) {
    const std::string& t = entry.first;
    for (size_t p = t.find(kSpmSpace, 1); p != std::string::npos; p = t.find(kSpmSpace, p + 1)) {
      if (p < k || t.compare(p - k, k, kSpmSpace) != 0) {
        split_words_ = false;
        return;
      }
    }
  }
}

void SpmModel::push_candidate(const char* text, SpmWorkspace* ws, int32_t left) const {
  if (left < 0) return;
  const SpmWorkspace::Symbol& l = ws->symbols[left];
  if (l.next < 0) return;
  const SpmWorkspace::Symbol& r = ws->symbols[l.next];
  ws->key.assign(text + l.start, l.len + r.len);
  auto it = token_to_id_->find(ws->key);
  if (it == token_to_id_->end()) return;
  ws->heap.push_back({scores_[it->second], left, l.next, l.len + r.len});
  std::push_heap(ws->heap.begin(), ws->heap.end(), worse);
}

void SpmModel::emit(const char* text, const SpmWorkspace::Symbol& s, SpmWorkspace* ws,
                    std::vector<int32_t>* out) const {
  ws->key.assign(text + s.start, s.len);
  auto it = token_to_id_->find(ws->key);
  if (it != token_to_id_->end()) {
    out->push_back(it->second);
    return;
  }
  // A character with no token (merged symbols always have one): its bytes, or unk.
  for (uint32_t i = s.start; i < s.start + s.len; ++i) {
    if (byte_tokens_[static_cast<uint8_t>(text[i])] < 0) {
      if (unk_ >= 0) out->push_back(unk_);
      return;
    }
  }
  for (uint32_t i = s.start; i < s.start + s.len; ++i)
    out->push_back(byte_tokens_[static_cast<uint8_t>(text[i])]);
}

void SpmModel::encode(const char* text, size_t n, SpmWorkspace* ws, std::vector<int32_t>* out) const {
  if (!split_words_) {
    encode_word(text, n, ws, out);
    return;
  }
  // No token has U+2581 after another character, so no merge crosses the start of a run of
  // U+2581 that follows another character: the words on either side merge independently (and
  // the priority queue stays as small as a word).
  const size_t k = std::strlen(kSpmSpace);
  size_t begin = 0;
  size_t i = 1;
  while (i < n) {
    if (i + k <= n && std::memcmp(text + i, kSpmSpace, k) == 0 &&
        !(i >= begin + k && std::memcmp(text + i - k, kSpmSpace, k) == 0)) {
      encode_word(text + begin, i - begin, ws, out);
      begin = i;
      i += k;
      continue;
    }
    ++i;
  }
  encode_word(text + begin, n - begin, ws, out);
}

void SpmModel::encode_word(const char* text, size_t n, SpmWorkspace* ws, std::vector<int32_t>* out) const {
  if (n == 0) return;
  auto& syms = ws->symbols;
  syms.clear();
  // One symbol per character (an ill-formed byte is a character of its own).
  size_t i = 0;
  while (i < n) {
    const Utf8Step st = utf8_next(text, n, i);
    const size_t len = st.kind == Utf8Step::kValid ? st.len : 1;
    const int32_t idx = static_cast<int32_t>(syms.size());
    syms.push_back({idx - 1, i + len < n ? idx + 1 : -1, static_cast<uint32_t>(i), static_cast<uint32_t>(len)});
    i += len;
  }
  ws->heap.clear();
  for (size_t k = 0; k + 1 < syms.size(); ++k) push_candidate(text, ws, static_cast<int32_t>(k));
  while (!ws->heap.empty()) {
    std::pop_heap(ws->heap.begin(), ws->heap.end(), worse);
    const SpmWorkspace::Candidate c = ws->heap.back();
    ws->heap.pop_back();
    SpmWorkspace::Symbol& l = syms[c.left];
    SpmWorkspace::Symbol& r = syms[c.right];
    // Stale: one side was merged away or grew since the pair was queued (symbols only grow).
    if (l.len == 0 || r.len == 0 || l.len + r.len != c.len) continue;
    l.len += r.len;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = c.left;
    r.len = 0;
    push_candidate(text, ws, l.prev);
    push_candidate(text, ws, c.left);
  }
  for (int32_t k = 0; k >= 0; k = syms[k].next) emit(text, syms[k], ws, out);
}

}  // namespace wren
