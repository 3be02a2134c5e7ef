#include "runtime/prefix_cache.h"

#include <algorithm>

#include "runtime/engine.h"

namespace wren {

namespace {

int64_t common_prefix(const std::vector<int32_t>& a, const int32_t* b, int64_t n) {
  const int64_t m = std::min<int64_t>(static_cast<int64_t>(a.size()), n);
  return std::mismatch(a.begin(), a.begin() + m, b).first - a.begin();
}

}  // namespace

PrefixCache::Match PrefixCache::lookup(const int32_t* tokens, int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  auto best = lru_.end();
  int64_t best_n = 0;
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    const int64_t k = common_prefix(it->tokens, tokens, n);
    if (k > best_n) {
      best_n = k;
      best = it;
    }
  }
  if (best == lru_.end()) return {};
  lru_.splice(lru_.begin(), lru_, best);
  return {lru_.front().session, best_n};
}

void PrefixCache::insert(const int32_t* tokens, int64_t n, std::unique_ptr<Session> session, int64_t reusable) {
  if (budget_ == 0 || !session) return;
  // Only the reusable positions are kept as the key: lookup() matches nothing past them.
  const int64_t held = std::min({n, session->n_past(), reusable});
  if (held <= 0) return;
  Entry e;
  e.tokens.assign(tokens, tokens + held);
  e.bytes = session->cache.bytes();
  if (e.bytes > budget_) return;
  e.session = std::move(session);
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = lru_.begin(); it != lru_.end();) {
    const int64_t k = common_prefix(it->tokens, e.tokens.data(), held);
    if (k == held) return;  // an entry already holds all of it
    if (k == static_cast<int64_t>(it->tokens.size())) {  // the new entry extends this one
      bytes_ -= it->bytes;
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
  bytes_ += e.bytes;
  lru_.push_front(std::move(e));
  evict_locked();
}

void PrefixCache::evict_locked() {
  while (bytes_ > budget_ && !lru_.empty()) {
    bytes_ -= lru_.back().bytes;
    lru_.pop_back();
  }
}

void PrefixCache::clear() {
  std::list<Entry> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    gone.swap(lru_);
    bytes_ = 0;
  }
}

size_t PrefixCache::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

int64_t PrefixCache::entries() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(lru_.size());
}

}  // namespace wren
