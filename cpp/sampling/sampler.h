// Samplers are small objects in a chain: each narrows or reshapes the candidate list; the last
// one picks a token. apply() works in place on reused storage: nothing allocates per token.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <utility>
#include <vector>

namespace wren {

struct Candidate {
  int32_t id;
  float logit;
  float p;  // filled by softmax()
};

struct Candidates {
  std::vector<Candidate> items;  // the first `size` are live
  size_t size = 0;
  bool sorted = false;     // descending by logit
  int32_t selected = -1;   // set by the final sampler

  void reset(const float* logits, int64_t n_vocab);
  void sort_desc();
  void softmax();  // p of the live items; sorts first
};

class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual void apply(Candidates& c) = 0;
  virtual void accept(int32_t token) {}
  // A prompt token: seen as accept() by default; stages that count only generated tokens skip it.
  virtual void accept_prompt(int32_t token) { accept(token); }
  virtual void reset() {}
};

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy
  int32_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
  float repeat_penalty = 1.0f;  // 1: off
  int32_t repeat_last_n = 64;
  // OpenAI's penalties on generated tokens: logit[j] -= count[j] * frequency + (count[j] > 0) * presence.
  float presence_penalty = 0.0f;   // -2..2
  float frequency_penalty = 0.0f;  // -2..2
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token id, -100..100) added to its logit first
  std::optional<uint64_t> seed;  // none: from the OS

  void validate() const;  // throws InvalidArgument naming the bad parameter
};

class SamplerChain : public Sampler {
 public:
  explicit SamplerChain(const SamplingParams& p);
  void apply(Candidates& c) override;
  void accept(int32_t token) override;
  void accept_prompt(int32_t token) override;
  void reset() override;
  // Picks the next token from raw logits.
  int32_t sample(const float* logits, int64_t n_vocab);

 private:
  std::vector<std::unique_ptr<Sampler>> stages_;
  Candidates cand_;
};

// Individual stages (exposed for unit tests on small distributions).
std::unique_ptr<Sampler> make_logit_bias(const std::vector<std::pair<int32_t, float>>& bias);
std::unique_ptr<Sampler> make_repetition_penalty(float penalty, int32_t last_n);
std::unique_ptr<Sampler> make_presence_frequency_penalty(float presence, float frequency);
std::unique_ptr<Sampler> make_temperature(float t);
std::unique_ptr<Sampler> make_top_k(int32_t k);
std::unique_ptr<Sampler> make_top_p(float p);
std::unique_ptr<Sampler> make_min_p(float p);
std::unique_ptr<Sampler> make_greedy();
std::unique_ptr<Sampler> make_dist(uint64_t seed);

}  // namespace wren
