// libFuzzer target: the sampler chain (sampling/samplers.cpp) with parameters and logits from the
// input, as Model.generate() builds and drives it: validate the parameters (InvalidArgument is the
// expected answer to bad ones), accept a token history, then sample a few times from the logits.
// Logits are arbitrary floats, NaN and infinities included: a hostile or broken model file yields
// them, and the sampler must still pick an id inside the vocabulary.
//
// Layout: byte 0 picks how the parameters are read (bit 0: raw IEEE floats / ints, the native ranges
// the bindings accept; otherwise small values scaled from single bytes, so valid chains are common),
// then the parameters, a history length byte and that many int32 ids, then the logits (float32).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_common.h"
#include "sampling/sampler.h"

namespace {

struct Reader {
  const uint8_t* p;
  size_t n;
  template <typename T>
  T take() {
    T v{};
    const size_t k = n < sizeof(T) ? n : sizeof(T);
    std::memcpy(&v, p, k);
    p += k;
    n -= k;
    return v;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader r{data, size};
  const uint8_t mode = r.take<uint8_t>();
  wren::SamplingParams p;
  if (mode & 1) {
    p.temperature = r.take<float>();
    p.top_k = r.take<int32_t>();
    p.top_p = r.take<float>();
    p.min_p = r.take<float>();
    p.repeat_penalty = r.take<float>();
    p.repeat_last_n = r.take<int32_t>();
  } else {
    p.temperature = r.take<uint8_t>() / 64.0f;           // 0 .. ~4, 0 = greedy
    p.top_k = r.take<uint8_t>() % 8;                      // 0 = off
    p.top_p = (r.take<uint8_t>() + 1) / 256.0f;           // (0, 1]
    p.min_p = r.take<uint8_t>() / 255.0f;                 // [0, 1]
    p.repeat_penalty = 0.25f + r.take<uint8_t>() / 64.0f;  // > 0
    p.repeat_last_n = r.take<uint8_t>();
  }
  p.seed = (mode & 2) ? r.take<uint64_t>() : 0;  // always seeded: a finding must replay
  const size_t n_history = r.take<uint8_t>();
  std::vector<int32_t> history;
  for (size_t i = 0; i < n_history && r.n >= 4; ++i) history.push_back(r.take<int32_t>());
  std::vector<float> logits(r.n / 4);
  if (logits.empty()) return 0;  // a model has at least one token
  std::memcpy(logits.data(), r.p, logits.size() * 4);
  const int64_t n_vocab = static_cast<int64_t>(logits.size());

  wren_fuzz::expect_wren_errors([&] {
    wren::SamplerChain chain(p);
    for (int32_t t : history) chain.accept(t);
    for (int round = 0; round < 3; ++round) {
      const int32_t id = chain.sample(logits.data(), n_vocab);
      if (id < 0 || id >= n_vocab) __builtin_trap();  // picked a token outside the vocabulary
      chain.accept(id);
    }
    chain.reset();
  });
  return 0;
}
