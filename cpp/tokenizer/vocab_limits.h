#pragma once
// The largest vocabulary any reader accepts (GGUF token arrays, tokenizer.json, config.json's
// vocab_size): 16.7M ids, 64x the largest real vocabularies (~256K). A token costs about 160 bytes of
// RAM once loaded (its text, its decoded bytes, a hash-map entry), so the bound keeps a hostile file's
// vocabulary under ~2.7 GB however small the file (a token needs only 8 bytes there).

#include <cstdint>

namespace wren {

constexpr int64_t kMaxVocab = int64_t(1) << 24;

}  // namespace wren
