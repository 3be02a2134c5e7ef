#include "runtime/session_file.h"

#include <algorithm>
#include <cstring>

#include "util/errors.h"

namespace wren {
namespace {

constexpr char kMagic[8] = {'W', 'R', 'E', 'N', 'S', 'E', 'S', 'S'};
constexpr uint32_t kVersion = 1;

uint64_t fnv1a(const uint8_t* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

struct Writer {
  std::vector<uint8_t> buf;
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    buf.insert(buf.end(), b, b + n);
  }
  void i64(int64_t v) { bytes(&v, 8); }
};

struct Reader {
  const std::string& path;
  const uint8_t* p;
  size_t left;
  void bytes(void* out, size_t n, const char* what) {
    if (n > left) throw FormatError(str_cat(path, ": truncated session file (", what, " missing)"));
    std::memcpy(out, p, n);
    p += n;
    left -= n;
  }
  int64_t i64(const char* what) {
    int64_t v;
    bytes(&v, 8, what);
    return v;
  }
};

// The positions layer `layer` of s keeps from: 0, or for a sliding layer the start of the first
// page it still holds.
int64_t first_kept(const Session& s, int64_t layer) {
  const KvLayout& L = s.cache.layout();
  if (!L.is_sliding(layer)) return 0;
  const KvLayerView v = s.cache.view(layer, s.n_past());
  int64_t lo = 0;
  while (lo < s.n_past() && v.pages[lo / v.page_rows] == nullptr) lo += v.page_rows;
  return std::min(lo, s.n_past());
}

}  // namespace

std::vector<uint8_t> save_session(const Engine& engine, const Session& s, const std::vector<int32_t>& tokens) {
  const int64_t n = s.n_past();
  WREN_CHECK(static_cast<int64_t>(tokens.size()) >= n, InvalidArgument, "save_session: ", tokens.size(),
             " tokens for a cache of ", n, " positions");
  const KvLayout& L = s.cache.layout();
  const ModelInfo& info = engine.info();
  Writer w;
  w.bytes(kMagic, 8);
  w.bytes(&kVersion, 4);
  for (int64_t v : {L.n_layers, L.kv_dim, L.head_dim, static_cast<int64_t>(L.dtype == KvDtype::F32), L.window, n,
                    info.n_vocab, static_cast<int64_t>(engine.file().file_size())})
    w.i64(v);
  w.i64(static_cast<int64_t>(info.architecture.size()));
  w.bytes(info.architecture.data(), info.architecture.size());
  for (int64_t l = 0; l < L.n_layers; ++l) {
    const uint8_t sliding = L.is_sliding(l) ? 1 : 0;
    w.bytes(&sliding, 1);
  }
  w.bytes(tokens.data(), static_cast<size_t>(n) * 4);
  w.bytes(s.logits.data(), s.logits.size() * 4);
  const int64_t n_heads = L.kv_dim / L.head_dim;
  for (int64_t l = 0; l < L.n_layers; ++l) {
    const int64_t lo = first_kept(s, l);
    w.i64(lo);
    if (n == 0) continue;
    const KvLayerView v = s.cache.view(l, n);
    for (int64_t h = 0; h < n_heads; ++h)
      for (const bool keys : {true, false})
        for (int64_t j = lo; j < n; ++j) w.bytes(keys ? v.k_row(h, j) : v.v_row(h, j), v.row_bytes());
  }
  const uint64_t sum = fnv1a(w.buf.data(), w.buf.size());
  w.bytes(&sum, 8);
  return std::move(w.buf);
}

int64_t max_session_bytes(const Engine& engine) {
  const KvLayout& L = engine.kv_pool().layout();
  const ModelInfo& info = engine.info();
  return 1024 + info.n_layers * 9 + static_cast<int64_t>(info.architecture.size()) + engine.n_ctx() * 4 +
         info.n_vocab * 4 + 2 * engine.n_ctx() * L.n_layers * L.kv_dim * static_cast<int64_t>(L.element_size());
}

std::unique_ptr<Session> load_session(const Engine& engine, const uint8_t* bytes, size_t size, const std::string& path,
                                      std::vector<int32_t>* tokens) {
  const KvLayout L = engine.kv_pool().layout();
  const ModelInfo& info = engine.info();
  if (size < 20) throw FormatError(str_cat(path, ": not a wrenlm session file (", size, " bytes)"));
  if (static_cast<int64_t>(size) > max_session_bytes(engine))
    throw FormatError(str_cat(path, ": ", size, " bytes is more than a session of this model (n_ctx=", engine.n_ctx(),
                              ") can hold"));
  struct Span {
    const uint8_t* ptr;
    size_t len;
    const uint8_t* data() const { return ptr; }
    size_t size() const { return len; }
  } data{bytes, size};
  Reader r{path, data.data(), data.size()};
  char magic[8];
  r.bytes(magic, 8, "magic");
  if (std::memcmp(magic, kMagic, 8) != 0) throw FormatError(str_cat(path, ": not a wrenlm session file (bad magic)"));
  uint32_t version;
  r.bytes(&version, 4, "version");
  if (version != kVersion)
    throw FormatError(str_cat(path, ": session file version ", version, ", this wrenlm reads version ", kVersion));
  uint64_t stored_sum;
  std::memcpy(&stored_sum, data.data() + data.size() - 8, 8);
  if (fnv1a(data.data(), data.size() - 8) != stored_sum)
    throw FormatError(str_cat(path, ": session file is corrupted or truncated (checksum mismatch)"));

  auto expect = [&](const char* field, int64_t got, int64_t want) {
    if (got != want)
      throw FormatError(str_cat(path, ": ", field, " is ", got, " but this model has ", want,
                                " (the session was saved with another model or options)"));
  };
  expect("layers", r.i64("layers"), L.n_layers);
  expect("kv_dim", r.i64("kv_dim"), L.kv_dim);
  expect("head_dim", r.i64("head_dim"), L.head_dim);
  expect("kv_cache type (0 f16, 1 f32)", r.i64("type"), L.dtype == KvDtype::F32);
  expect("window", r.i64("window"), L.window);
  const int64_t n = r.i64("positions");
  if (n < 0 || n > engine.n_ctx())
    throw FormatError(str_cat(path, ": ", n, " positions; this model holds 0..n_ctx=", engine.n_ctx()));
  expect("n_vocab", r.i64("n_vocab"), info.n_vocab);
  expect("model file size", r.i64("model file size"), static_cast<int64_t>(engine.file().file_size()));
  const int64_t arch_len = r.i64("architecture");
  if (arch_len != static_cast<int64_t>(info.architecture.size()))
    throw FormatError(str_cat(path, ": saved with another architecture than '", info.architecture, "'"));
  std::string arch(static_cast<size_t>(arch_len), '\0');
  r.bytes(arch.data(), arch.size(), "architecture");
  if (arch != info.architecture)
    throw FormatError(str_cat(path, ": saved with architecture '", arch, "', this model is '", info.architecture, "'"));
  for (int64_t l = 0; l < L.n_layers; ++l) {
    uint8_t sliding;
    r.bytes(&sliding, 1, "layer kinds");
    expect("sliding flag of a layer", sliding, L.is_sliding(l) ? 1 : 0);
  }
  tokens->resize(static_cast<size_t>(n));
  r.bytes(tokens->data(), static_cast<size_t>(n) * 4, "tokens");
  for (size_t i = 0; i < tokens->size(); ++i)
    if ((*tokens)[i] < 0 || (*tokens)[i] >= info.n_vocab)
      throw FormatError(str_cat(path, ": token ", i, " is ", (*tokens)[i], ", outside the vocabulary"));
  auto s = engine.new_session();
  r.bytes(s->logits.data(), s->logits.size() * 4, "logits");
  const int64_t n_heads = L.kv_dim / L.head_dim;
  const size_t row = L.row_bytes();
  for (int64_t l = 0; l < L.n_layers; ++l) {
    const int64_t lo = r.i64("first position of a layer");
    const bool ok = lo == 0 || (L.is_sliding(l) && lo > 0 && lo <= n && lo % L.page_rows == 0);
    if (!ok) throw FormatError(str_cat(path, ": layer ", l, " starts at position ", lo));
    if (n == 0) continue;
    for (int64_t h = 0; h < n_heads; ++h)
      for (const bool keys : {true, false}) {
        const size_t bytes = static_cast<size_t>(n - lo) * row;
        if (bytes > r.left) throw FormatError(str_cat(path, ": truncated session file (layer ", l, " rows missing)"));
        s->cache.write_rows(l, h, lo, n - lo, keys, r.p);
        r.p += bytes;
        r.left -= bytes;
      }
  }
  if (r.left != 8) throw FormatError(str_cat(path, ": ", r.left - 8, " unexpected bytes after the rows"));
  s->cache.advance(n);
  WREN_CHECK(s->cache.can_resume_at(n), FormatError, path, ": a sliding layer lacks part of its window");
  return s;
}

}  // namespace wren
