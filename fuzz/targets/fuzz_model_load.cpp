// libFuzzer target: a whole model load from an arbitrary GGUF file, through the entry point of
// wrenlm.Model (Engine: reader, architecture and hyper-parameters, weight binding and repacking, KV
// cache, tokenizer), then a short forward pass -- batched and one token, fast and exact numerics --
// over the first and last token ids. Weights, shapes and metadata come from the fuzz input; the
// sizes a file can declare are bounded by the bytes it holds, so runs stay short.
//
// Built only where Eigen and OpenBLAS are found (fuzz/CMakeLists.txt); seeds are tiny Llama files.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_common.h"
#include "runtime/engine.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static wren_fuzz::MemFile file("fuzz-model.gguf");
  const std::string& path = file.write(data, size);
  wren_fuzz::expect_wren_errors([&] {
    wren::Engine engine(path, /*n_ctx=*/16, /*n_threads=*/1, wren::KvDtype::F16);
    const int32_t n_vocab = static_cast<int32_t>(engine.info().n_vocab);
    const std::vector<int32_t> tokens = {0, n_vocab - 1, n_vocab / 2};
    std::unique_ptr<wren::Session> s = engine.new_session();
    engine.eval(*s, tokens.data(), 3, nullptr, {}, /*exact=*/false);
    engine.eval(*s, tokens.data() + 1, 1, nullptr, {}, /*exact=*/true);
    std::vector<float> all(static_cast<size_t>(n_vocab) * 2);
    std::unique_ptr<wren::Session> s2 = engine.new_session();
    engine.eval(*s2, tokens.data(), 2, all.data(), {}, /*exact=*/true);
    wren_fuzz::expect_wren_errors([&] { (void)engine.tokenizer().encode("Hello world", true, true); });
  });
  return 0;
}
