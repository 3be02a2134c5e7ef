#include "runtime/scheduler.h"

#include <algorithm>
#include <chrono>
#include <exception>

#include "runtime/engine.h"
#include "runtime/generator.h"
#include "util/errors.h"

namespace wren {

Scheduler::~Scheduler() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& g : running_) g->finish_cancelled();
  running_.clear();
}

void Scheduler::submit(std::shared_ptr<Generation> g) {
  std::lock_guard<std::mutex> lock(mu_);
  running_.push_back(std::move(g));
}

void Scheduler::sweep_locked() {
  running_.erase(std::remove_if(running_.begin(), running_.end(),
                                [](const std::shared_ptr<Generation>& g) {
                                  if (g->cancelled()) g->finish_cancelled();
                                  return g->finished();
                                }),
                 running_.end());
}

void Scheduler::release_cancelled() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!busy_) sweep_locked();  // else the thread running the pass sweeps when it is over
}

Scheduler::Stats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

std::optional<std::string> Scheduler::next(Generation& g, const CancelFn& cancel) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    std::optional<std::string> piece;
    if (g.take(piece)) return piece;  // a piece, or the end (an error for g is rethrown)
    if (!busy_) {
      busy_ = true;
      sweep_locked();
      lock.unlock();
      bool interrupted = false, ran = false;
      try {
        ran = run_pass(cancel, g, interrupted);
      } catch (...) {
        lock.lock();
        busy_ = false;
        cv_.notify_all();
        throw;
      }
      lock.lock();
      busy_ = false;
      sweep_locked();
      cv_.notify_all();
      if (interrupted) throw Interrupted();  // Ctrl-C: g was cancelled; the caller unwinds
      if (!ran && !g.ready()) {
        // Nothing could run and g has no piece: it waits for its consumer's lookahead (cannot
        // happen for the asking consumer) or was ended by another thread; re-check, then wait.
        if (g.take(piece)) return piece;
        cv_.wait_for(lock, std::chrono::milliseconds(10));
      }
      continue;
    }
    cv_.wait_for(lock, std::chrono::milliseconds(10));
    if (cancel) {
      lock.unlock();
      const bool stop = cancel();  // Ctrl-C: asks Python, which needs its own lock, not ours
      lock.lock();
      if (stop) {
        g.cancel();  // the thread running passes ends it when its pass is over
        throw Interrupted();
      }
    }
  }
}

namespace {

int64_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t n = std::min(a.size(), b.size());
  return static_cast<int64_t>(std::mismatch(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(n), b.begin()).first -
                              a.begin());
}

// Whether g, which has not evaluated any of its prompt yet, should wait for a generation submitted
// before it that is computing a prompt with the same start and will offer it to the prefix cache:
// requests arriving together with one system prompt or RAG context then compute it once. g then
// takes it from the cache (refresh_prefix) when that prompt is in.
bool waits_for_shared_prefix(const Generation& g, const std::vector<std::shared_ptr<Generation>>& earlier) {
  for (const auto& h : earlier) {
    if (h.get() == &g) return false;
    if (!h->offers_prefix() || !h->ready()) continue;
    const int64_t n_h = static_cast<int64_t>(h->prompt().size());
    if (g.reusable(common_prefix(g.prompt(), h->prompt()), n_h) > g.n_cached_tokens()) return true;
  }
  return false;
}

}  // namespace

bool Scheduler::run_pass(const CancelFn& cancel, Generation& asking, bool& interrupted) {
  std::vector<std::shared_ptr<Generation>> candidates;
  {
    std::lock_guard<std::mutex> lock(mu_);
    candidates = running_;
  }
  // Decoding generations first (one token each), then prompt chunks while the pass has room; a
  // pass always takes at least one generation.
  std::vector<Generation*> pass;
  std::vector<Generation::Input> inputs;
  int64_t room = engine_.max_batch();
  for (int decoding = 1; decoding >= 0; --decoding)
    for (const auto& g : candidates) {
      if (!g->ready() || g->prompt_pending() == (decoding == 1)) continue;
      if (!decoding && !g->computing_prompt()) {
        g->refresh_prefix();
        if (!g->prompt_pending()) continue;  // the whole prompt was taken: it samples next pass
        if (waits_for_shared_prefix(*g, candidates)) continue;
      }
      Generation::Input in;
      try {
        in = g->input();
      } catch (...) {  // e.g. the context is full: this generation ends with the error, the rest go on
        g->fail(std::current_exception());
        continue;
      }
      if (!pass.empty() && in.n > room) continue;
      pass.push_back(g.get());
      inputs.push_back(in);
      room -= in.n;
    }
  if (pass.empty()) return false;

  std::vector<EvalRequest> requests;  // a generation whose whole prompt was reused has nothing to evaluate
  int64_t tokens = 0;
  for (size_t i = 0; i < pass.size(); ++i)
    if (inputs[i].n > 0) {
      requests.push_back(EvalRequest{&pass[i]->session(), inputs[i].tokens, inputs[i].n, inputs[i].all_logits,
                                     inputs[i].input_end});
      tokens += inputs[i].n;
    }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.passes += 1;
    stats_.tokens += tokens;
    stats_.max_sequences = std::max<int64_t>(stats_.max_sequences, static_cast<int64_t>(pass.size()));
  }
  // Between layers: Ctrl-C on this thread cancels the asking generation; the pass itself stops
  // only when every generation in it is cancelled (one cancellation must not cost the others
  // their token).
  const CancelFn stop_pass = [&] {
    if (!interrupted && cancel && cancel()) {
      interrupted = true;
      asking.cancel();
    }
    return std::all_of(pass.begin(), pass.end(), [](const Generation* g) { return g->cancelled(); });
  };
  try {
    if (!requests.empty()) engine_.eval_batch(requests, stop_pass);
  } catch (const Interrupted&) {
    for (Generation* g : pass) g->finish_cancelled();
    return true;
  } catch (...) {
    for (Generation* g : pass) g->fail(std::current_exception());
    return true;
  }
  for (size_t i = 0; i < pass.size(); ++i) {
    try {
      pass[i]->consume(inputs[i]);
    } catch (...) {
      pass[i]->fail(std::current_exception());
    }
  }
  return true;
}

}  // namespace wren
