// A session saved to a file and loaded back (the bytes here; the file itself is python/wrenlm/session.py's): the tokens its KV cache holds, the cache's rows and
// the last logits, so a conversation continues in another process without recomputing it.
//
// Layout (little-endian): "WRENSESS", u32 version, then i64 fields — layers, kv_dim, head_dim,
// element type (0 f16, 1 f32), window, positions, n_vocab, model file size — the architecture
// name (i64 length + bytes), one byte per layer (1: sliding); the tokens (i32 x positions), the
// logits (f32 x n_vocab); per layer the first position stored (i64; a sliding layer keeps only its
// window) and, head by head, its key rows then its value rows from there on; last, an FNV-1a
// 64-bit checksum of everything before it. Loading checks every field against the model and the
// file's size before reading rows, and the checksum: a truncated, corrupted or foreign file is a
// FormatError naming the file and what is wrong.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/engine.h"

namespace wren {

// The bytes of a session file for s, whose cache holds tokens[0..s.n_past()).
std::vector<uint8_t> save_session(const Engine& engine, const Session& s, const std::vector<int32_t>& tokens);

// The largest session file engine could have written (callers refuse bigger files unread).
int64_t max_session_bytes(const Engine& engine);

// A new session of engine from a session file's bytes (name: for messages); its tokens into *tokens.
std::unique_ptr<Session> load_session(const Engine& engine, const uint8_t* data, size_t size, const std::string& name,
                                      std::vector<int32_t>* tokens);

}  // namespace wren
