// libFuzzer target: the GGUF reader (format/gguf.cpp) on arbitrary bytes, through the same entry point
// as wrenlm.Model / _core.GgufFile (a path, memory-mapped). A file that opens is then read the way
// loading does: every metadata value decoded, the typed getters, each tensor's bytes touched at both
// ends, and the tokenizer built from its tokenizer.ggml.* keys and run on a fixed text and ids.
#include <cstddef>
#include <cstdint>

#include "format/gguf.h"
#include "fuzz_common.h"
#include "tokenizer/tokenizer.h"

namespace {

void read_value(const wren::GgufValue& v, int depth) {
  if (v.type != wren::GgufType::ARRAY) return;
  v.for_each([&](size_t, const wren::GgufValue& e) { read_value(e, depth + 1); });
  if (v.size() <= 1024) (void)v.elements();
  std::string enc;
  v.encode(&enc);
}

volatile uint8_t g_sink;

void read_file(const wren::GgufFile& f) {
  for (const std::string& key : f.keys()) {
    read_value(*f.find(key), 0);
    wren_fuzz::expect_wren_errors([&] { (void)f.get_string(key); });
    wren_fuzz::expect_wren_errors([&] { (void)f.get_uint(key); });
    wren_fuzz::expect_wren_errors([&] { (void)f.get_float(key); });
    wren_fuzz::expect_wren_errors([&] { (void)f.get_bool(key, false); });
    wren_fuzz::expect_wren_errors([&] { (void)f.get_string_array(key); });
    wren_fuzz::expect_wren_errors([&] { (void)f.get_int_array(key); });
  }
  for (const wren::GgufTensor& t : f.tensors()) {
    (void)t.n_elements();
    (void)t.shape_str();
    if (t.nbytes > 0) g_sink = t.data[0] ^ t.data[t.nbytes - 1];  // a tensor outside the mapping faults here
    if (f.find_tensor(t.name) == nullptr) __builtin_trap();
  }
  if (f.has("tokenizer.ggml.model")) {
    const std::unique_ptr<wren::Tokenizer> tok = wren::Tokenizer::from_source(f);
    static const int32_t kIds[] = {0, 1, 2, 3, 100, 255, 256, 1000, -1, 1 << 30};
    wren_fuzz::exercise_tokenizer(*tok, "Hello world! <|im_start|>user\n\xC3\xA9 12345 \xF0\x9F\x98\x80  x",
                                  std::vector<int32_t>(std::begin(kIds), std::end(kIds)));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static wren_fuzz::MemFile file("fuzz.gguf");
  const std::string& path = file.write(data, size);
  wren_fuzz::expect_wren_errors([&] {
    wren::GgufFile f(path);
    read_file(f);
  });
  return 0;
}
