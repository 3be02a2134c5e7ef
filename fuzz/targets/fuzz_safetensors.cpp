// libFuzzer target: the safetensors reader (format/safetensors.cpp, and through it the JSON reader on
// its header) on arbitrary bytes, opened by path as wrenlm.Model and _core.SafetensorsFile open it.
// A file that opens has each tensor looked up and its bytes touched at both ends.
#include <cstddef>
#include <cstdint>

#include "format/safetensors.h"
#include "fuzz_common.h"

namespace {
volatile uint8_t g_sink;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static wren_fuzz::MemFile file("fuzz.safetensors");
  const std::string& path = file.write(data, size);
  wren_fuzz::expect_wren_errors([&] {
    wren::SafetensorsFile f(path);
    for (const wren::SafetensorsTensor& t : f.tensors()) {
      if (f.find(t.name) == nullptr) __builtin_trap();
      (void)t.n_elements();
      wren_fuzz::expect_wren_errors([&] { (void)f.require_supported(t); });
      if (t.nbytes > 0) g_sink = t.data[0] ^ t.data[t.nbytes - 1];  // outside the mapping: faults here
    }
  });
  return 0;
}
