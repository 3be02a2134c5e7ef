// Computed prefixes kept for reuse across calls: sessions (their KV pages) keyed by the tokens
// they hold. A new generation whose prompt starts with tokens an entry holds starts from that
// entry's pages (shared, copied on write) instead of computing them: a RAG context sent again, a
// chat history re-sent every turn, a system prompt shared by concurrent requests (stored once).
// Bounded by a byte budget, least recently used entries evicted first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <vector>

namespace wren {

struct Session;

class PrefixCache {
 public:
  // budget_bytes == 0: the cache keeps nothing.
  explicit PrefixCache(size_t budget_bytes) : budget_(budget_bytes) {}

  struct Match {
    std::shared_ptr<const Session> session;  // holds at least n positions equal to the tokens asked for
    int64_t n = 0;                           // 0: nothing shared
  };
  // The entry sharing the longest prefix with tokens[0..n); it becomes the most recently used.
  Match lookup(const int32_t* tokens, int64_t n);
  // Keeps session, whose cache holds tokens[0..session->n_past()) (tokens may run longer: only that
  // many count), of which the first `reusable` positions may be reused (those computed as a cold
  // prompt computes them; lookup() never offers more). An entry the new one extends is replaced; a
  // new one that an entry already covers is dropped. Then the least recently used entries go until
  // the budget holds.
  void insert(const int32_t* tokens, int64_t n, std::unique_ptr<Session> session, int64_t reusable);
  void clear();

  size_t budget() const { return budget_; }
  size_t bytes() const;     // the entries' KV pages (pages shared with running sequences included)
  int64_t entries() const;

 private:
  struct Entry {
    std::vector<int32_t> tokens;  // what the session's cache holds, position by position, up to `reusable`
    std::shared_ptr<const Session> session;
    size_t bytes = 0;
  };
  void evict_locked();

  const size_t budget_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // front: most recently used
  size_t bytes_ = 0;
};

}  // namespace wren
