// Shared pieces of the libFuzzer targets: fuzz bytes as a file the readers can open, metadata held in
// memory, and the tokenizer calls every target makes once it has a Tokenizer.
//
// The contract each target checks: wrenlm's own exceptions (util/errors.h, all WrenError) are the
// expected answer to bad input and are swallowed here; anything else -- a sanitizer report, a crash,
// a std:: exception escaping (libFuzzer aborts on it), a hang past -timeout, memory past -rss_limit_mb
// -- is a finding.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "format/tensor_source.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "util/errors.h"

namespace wren_fuzz {

// One in-memory file (memfd), rewritten for each input; path() opens it by name like a disk file, so
// the readers run their real open / fstat / mmap code.
class MemFile {
 public:
  explicit MemFile(const char* name) : fd_(::memfd_create(name, 0)) {
    if (fd_ < 0) std::abort();
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { ::close(fd_); }
  const std::string& write(const uint8_t* data, size_t size) {
    if (::ftruncate(fd_, 0) != 0) std::abort();
    size_t done = 0;
    while (done < size) {
      const ssize_t n = ::pwrite(fd_, data + done, size - done, static_cast<off_t>(done));
      if (n <= 0) std::abort();
      done += static_cast<size_t>(n);
    }
    return path_;
  }
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

// A TensorSource whose metadata is set in code: the fixed vocabularies of the tokenizer target.
class MemSource : public wren::TensorSource {
 public:
  explicit MemSource(std::string name) : TensorSource(std::move(name)) {}
  uint64_t file_size() const override { return 0; }
  void put(const std::string& key, wren::GgufValue v) { add_value(key, std::move(v)); }
  void put_str(const std::string& key, const std::string& s) {
    wren::GgufValue v;
    v.type = wren::GgufType::STRING;
    v.s = s;
    put(key, std::move(v));
  }
  void put_u32(const std::string& key, uint64_t u) {
    wren::GgufValue v;
    v.type = wren::GgufType::U32;
    v.u = u;
    put(key, std::move(v));
  }
  void put_bool(const std::string& key, bool b) {
    wren::GgufValue v;
    v.type = wren::GgufType::BOOL;
    v.u = b ? 1 : 0;
    put(key, std::move(v));
  }
  void put_strings(const std::string& key, const std::vector<std::string>& items) {
    std::vector<wren::GgufValue> elems;
    for (const std::string& s : items) {
      wren::GgufValue e;
      e.type = wren::GgufType::STRING;
      e.s = s;
      elems.push_back(std::move(e));
    }
    put(key, wren::GgufValue::array_of(wren::GgufType::STRING, elems));
  }
  void put_i32s(const std::string& key, const std::vector<int32_t>& items) {
    std::vector<wren::GgufValue> elems;
    for (int32_t x : items) {
      wren::GgufValue e;
      e.type = wren::GgufType::I32;
      e.i = x;
      elems.push_back(std::move(e));
    }
    put(key, wren::GgufValue::array_of(wren::GgufType::I32, elems));
  }
  void put_f32s(const std::string& key, const std::vector<float>& items) {
    std::vector<wren::GgufValue> elems;
    for (float x : items) {
      wren::GgufValue e;
      e.type = wren::GgufType::F32;
      e.f = x;
      elems.push_back(std::move(e));
    }
    put(key, wren::GgufValue::array_of(wren::GgufType::F32, elems));
  }
};

// Runs fn; wrenlm's typed errors are the expected outcome for bad input.
template <typename Fn>
void expect_wren_errors(Fn&& fn) {
  try {
    fn();
  } catch (const wren::WrenError&) {
  }
}

// Encodes text and decodes ids (any int32, in range or not) the ways the Python surface can: both
// flags of encode, decode with and without control tokens, and the streaming detokenizer. Checks the
// few things that must hold for every input: encode gives ids in range, and the streamed text never
// holds an incomplete UTF-8 character at a piece boundary.
inline void exercise_tokenizer(const wren::Tokenizer& tok, const std::string& text, const std::vector<int32_t>& ids) {
  const int32_t n_vocab = tok.n_vocab();
  for (int flags = 0; flags < 4; ++flags) {
    std::vector<int32_t> out;
    expect_wren_errors([&] { out = tok.encode(text, flags & 1, flags & 2); });
    for (int32_t id : out)
      if (id < 0 || id >= n_vocab) std::abort();  // encode produced an id outside the vocabulary
    expect_wren_errors([&] { (void)tok.decode(out, flags & 1); });
  }
  std::vector<int32_t> in_range;
  for (int32_t id : ids) in_range.push_back(static_cast<int32_t>(static_cast<uint32_t>(id) % static_cast<uint32_t>(n_vocab)));
  expect_wren_errors([&] { (void)tok.decode(ids, false); });  // out-of-range ids: InvalidArgument
  expect_wren_errors([&] { (void)tok.decode(in_range, true); });
  expect_wren_errors([&] { (void)tok.decode(in_range, false); });
  for (bool skip : {false, true}) {
    wren::Detokenizer d(tok, skip);
    for (int32_t id : ids)
      expect_wren_errors([&] {
        const std::string piece = d.push(id);
        if (wren::utf8_first_invalid(piece.data(), piece.size()) != piece.size()) std::abort();  // split character
      });
    const std::string tail = d.flush();
    if (wren::utf8_first_invalid(tail.data(), tail.size()) != tail.size()) std::abort();
  }
  for (int32_t id : ids) {
    expect_wren_errors([&] { (void)tok.token_bytes(id); });
    expect_wren_errors([&] { (void)tok.token_text(id); });
    (void)tok.is_eog(id);
    (void)tok.is_control(id);
  }
  (void)tok.token_id(text);
}

// Little-endian int32s from bytes (the tail that does not fill one is dropped).
inline std::vector<int32_t> as_ids(const uint8_t* data, size_t size) {
  std::vector<int32_t> ids(size / 4);
  if (!ids.empty()) std::memcpy(ids.data(), data, ids.size() * 4);
  return ids;
}

}  // namespace wren_fuzz
