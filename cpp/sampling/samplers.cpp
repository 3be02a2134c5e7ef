#include <algorithm>
#include <cmath>
#include <deque>
#include <unordered_map>

#include "sampling/sampler.h"
#include "util/errors.h"

namespace wren {

void Candidates::reset(const float* logits, int64_t n_vocab) {
  items.resize(static_cast<size_t>(n_vocab));
  for (int64_t i = 0; i < n_vocab; ++i) items[static_cast<size_t>(i)] = {static_cast<int32_t>(i), logits[i], 0.f};
  size = static_cast<size_t>(n_vocab);
  sorted = false;
  selected = -1;
}

void Candidates::sort_desc() {
  if (sorted) return;
  std::sort(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(size),
            [](const Candidate& a, const Candidate& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); });
  sorted = true;
}

void Candidates::softmax() {
  sort_desc();
  const float mx = items[0].logit;
  double sum = 0;
  for (size_t i = 0; i < size; ++i) sum += (items[i].p = std::exp(items[i].logit - mx));
  for (size_t i = 0; i < size; ++i) items[i].p = static_cast<float>(items[i].p / sum);
}

namespace {

// The logit of token id, or null: candidates are still indexed by id when the stages that call this
// run (the chain puts them first, before anything sorts or cuts the list).
float* logit_of(Candidates& c, int32_t id) {
  if (id < 0 || static_cast<size_t>(id) >= c.size || c.items[static_cast<size_t>(id)].id != id) return nullptr;
  return &c.items[static_cast<size_t>(id)].logit;
}

class RepetitionPenalty : public Sampler {
 public:
  RepetitionPenalty(float penalty, int32_t last_n) : penalty_(penalty), last_n_(last_n) {}
  void apply(Candidates& c) override {
    if (penalty_ == 1.0f || recent_.empty()) return;
    for (int32_t id : recent_)
      if (float* l = logit_of(c, id)) *l = *l > 0 ? *l / penalty_ : *l * penalty_;
  }
  void accept(int32_t token) override {
    if (last_n_ <= 0) return;
    history_.push_back(token);
    if (static_cast<int32_t>(history_.size()) > last_n_) history_.pop_front();
    recent_.assign(history_.begin(), history_.end());
    std::sort(recent_.begin(), recent_.end());
    recent_.erase(std::unique(recent_.begin(), recent_.end()), recent_.end());
  }
  void reset() override {
    history_.clear();
    recent_.clear();
  }

 private:
  float penalty_;
  int32_t last_n_;
  std::deque<int32_t> history_;
  std::vector<int32_t> recent_;  // distinct ids in history_: each is penalized once
};

class LogitBias : public Sampler {
 public:
  explicit LogitBias(const std::vector<std::pair<int32_t, float>>& bias) : bias_(bias) {}
  void apply(Candidates& c) override {
    for (const auto& [id, b] : bias_)
      if (float* l = logit_of(c, id)) *l += b;
  }

 private:
  std::vector<std::pair<int32_t, float>> bias_;
};

// OpenAI's presence and frequency penalties, on the tokens generated so far (not the prompt's).
class PresenceFrequencyPenalty : public Sampler {
 public:
  PresenceFrequencyPenalty(float presence, float frequency) : presence_(presence), frequency_(frequency) {}
  void apply(Candidates& c) override {
    for (const auto& [id, n] : count_)
      if (float* l = logit_of(c, id)) *l -= static_cast<float>(n) * frequency_ + presence_;
  }
  void accept(int32_t token) override { ++count_[token]; }
  void accept_prompt(int32_t) override {}
  void reset() override { count_.clear(); }

 private:
  float presence_, frequency_;
  std::unordered_map<int32_t, int64_t> count_;  // generated token -> times generated
};

class Temperature : public Sampler {
 public:
  explicit Temperature(float t) : t_(t) {}
  // Scales the logits' distances from the largest: the distribution is the same as dividing the
  // logits themselves, but nothing overflows however small t is. As t -> 0 every token but the most
  // likely one(s) goes to -inf: the greedy limit, not the overflowed infinities of a plain division
  // (whose softmax is NaN and picks an arbitrary token).
  void apply(Candidates& c) override {
    if (c.size == 0) return;
    float top = c.items[0].logit;
    for (size_t i = 1; i < c.size; ++i) top = std::max(top, c.items[i].logit);
    if (!std::isfinite(top)) top = 0.0f;
    for (size_t i = 0; i < c.size; ++i) c.items[i].logit = (c.items[i].logit - top) / t_;
  }

 private:
  float t_;
};

class TopK : public Sampler {
 public:
  explicit TopK(int32_t k) : k_(k) {}
  void apply(Candidates& c) override {
    if (k_ <= 0 || static_cast<size_t>(k_) >= c.size) return;
    auto cmp = [](const Candidate& a, const Candidate& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); };
    std::partial_sort(c.items.begin(), c.items.begin() + k_, c.items.begin() + static_cast<std::ptrdiff_t>(c.size), cmp);
    c.size = static_cast<size_t>(k_);
    c.sorted = true;
  }

 private:
  int32_t k_;
};

class TopP : public Sampler {
 public:
  explicit TopP(float p) : p_(p) {}
  void apply(Candidates& c) override {
    if (p_ >= 1.0f) return;
    c.softmax();
    double cum = 0;
    size_t keep = c.size;
    for (size_t i = 0; i < c.size; ++i) {
      cum += c.items[i].p;
      if (cum >= p_) {
        keep = i + 1;
        break;
      }
    }
    c.size = std::max<size_t>(1, keep);
  }

 private:
  float p_;
};

class MinP : public Sampler {
 public:
  explicit MinP(float p) : p_(p) {}
  void apply(Candidates& c) override {
    if (p_ <= 0.0f) return;
    c.softmax();
    const float threshold = c.items[0].p * p_;
    size_t keep = 1;
    while (keep < c.size && c.items[keep].p >= threshold) ++keep;
    c.size = keep;
  }

 private:
  float p_;
};

class Greedy : public Sampler {
 public:
  void apply(Candidates& c) override {
    size_t best = 0;
    for (size_t i = 1; i < c.size; ++i)
      if (c.items[i].logit > c.items[best].logit) best = i;
    c.selected = c.items[best].id;
  }
};

class Dist : public Sampler {
 public:
  explicit Dist(uint64_t seed) : seed_(seed), rng_(seed) {}
  void apply(Candidates& c) override {
    c.softmax();
    // Uniform in [0, 1) from the top 53 bits: the same sequence on every platform.
    const double u = static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0);
    double cum = 0;
    double total = 0;
    for (size_t i = 0; i < c.size; ++i) total += c.items[i].p;
    for (size_t i = 0; i < c.size; ++i) {
      cum += c.items[i].p;
      if (u * total < cum) {
        c.selected = c.items[i].id;
        return;
      }
    }
    c.selected = c.items[c.size - 1].id;
  }
  void reset() override { rng_.seed(seed_); }

 private:
  uint64_t seed_;
  std::mt19937_64 rng_;
};

}  // namespace

void SamplingParams::validate() const {
  WREN_CHECK(std::isfinite(temperature) && temperature >= 0.0f, InvalidArgument,
             "temperature must be a finite number >= 0, got ", temperature);
  WREN_CHECK(top_k >= 0, InvalidArgument, "top_k must be >= 0 (0 disables it), got ", top_k);
  WREN_CHECK(top_p > 0.0f && top_p <= 1.0f, InvalidArgument, "top_p must be in (0, 1], got ", top_p);
  WREN_CHECK(min_p >= 0.0f && min_p <= 1.0f, InvalidArgument, "min_p must be in [0, 1], got ", min_p);
  WREN_CHECK(std::isfinite(repeat_penalty) && repeat_penalty > 0.0f, InvalidArgument,
             "repeat_penalty must be a finite number > 0, got ", repeat_penalty);
  WREN_CHECK(repeat_last_n >= 0, InvalidArgument, "repeat_last_n must be >= 0, got ", repeat_last_n);
  WREN_CHECK(std::isfinite(presence_penalty) && std::fabs(presence_penalty) <= 2.0f, InvalidArgument,
             "presence_penalty must be in [-2, 2], got ", presence_penalty);
  WREN_CHECK(std::isfinite(frequency_penalty) && std::fabs(frequency_penalty) <= 2.0f, InvalidArgument,
             "frequency_penalty must be in [-2, 2], got ", frequency_penalty);
  for (const auto& [id, b] : logit_bias) {
    WREN_CHECK(id >= 0, InvalidArgument, "logit_bias: token id ", id, " is negative");
    WREN_CHECK(std::isfinite(b) && std::fabs(b) <= 100.0f, InvalidArgument, "logit_bias[", id,
               "] must be in [-100, 100], got ", b);
  }
}

std::unique_ptr<Sampler> make_logit_bias(const std::vector<std::pair<int32_t, float>>& bias) {
  return std::make_unique<LogitBias>(bias);
}
std::unique_ptr<Sampler> make_repetition_penalty(float penalty, int32_t last_n) {
  return std::make_unique<RepetitionPenalty>(penalty, last_n);
}
std::unique_ptr<Sampler> make_presence_frequency_penalty(float presence, float frequency) {
  return std::make_unique<PresenceFrequencyPenalty>(presence, frequency);
}
std::unique_ptr<Sampler> make_temperature(float t) { return std::make_unique<Temperature>(t); }
std::unique_ptr<Sampler> make_top_k(int32_t k) { return std::make_unique<TopK>(k); }
std::unique_ptr<Sampler> make_top_p(float p) { return std::make_unique<TopP>(p); }
std::unique_ptr<Sampler> make_min_p(float p) { return std::make_unique<MinP>(p); }
std::unique_ptr<Sampler> make_greedy() { return std::make_unique<Greedy>(); }
std::unique_ptr<Sampler> make_dist(uint64_t seed) { return std::make_unique<Dist>(seed); }

SamplerChain::SamplerChain(const SamplingParams& p) {
  p.validate();
  if (!p.logit_bias.empty()) stages_.push_back(make_logit_bias(p.logit_bias));
  if (p.repeat_penalty != 1.0f) stages_.push_back(make_repetition_penalty(p.repeat_penalty, p.repeat_last_n));
  if (p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f)
    stages_.push_back(make_presence_frequency_penalty(p.presence_penalty, p.frequency_penalty));
  if (p.temperature == 0.0f) {
    stages_.push_back(make_greedy());
    return;
  }
  stages_.push_back(make_temperature(p.temperature));
  stages_.push_back(make_top_k(p.top_k));
  stages_.push_back(make_top_p(p.top_p));
  stages_.push_back(make_min_p(p.min_p));
  stages_.push_back(make_dist(p.seed ? *p.seed : std::random_device{}()));
}

void SamplerChain::apply(Candidates& c) {
  for (auto& s : stages_) s->apply(c);
}
void SamplerChain::accept(int32_t token) {
  for (auto& s : stages_) s->accept(token);
}
void SamplerChain::accept_prompt(int32_t token) {
  for (auto& s : stages_) s->accept_prompt(token);
}
void SamplerChain::reset() {
  for (auto& s : stages_) s->reset();
}

int32_t SamplerChain::sample(const float* logits, int64_t n_vocab) {
  cand_.reset(logits, n_vocab);
  apply(cand_);
  return cand_.selected;
}

}  // namespace wren
