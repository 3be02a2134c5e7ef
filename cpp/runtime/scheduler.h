// Continuous batching: the forward passes of every generation in progress on an engine run together.
// Each pass takes the next token of every decoding generation that is ready and, while the pass has
// room (max_batch tokens), a prompt chunk of those still reading their prompt; generations join and
// leave between passes.
//
// No thread of its own: the passes run on the consumers' threads. A consumer asking for its next
// piece runs passes itself when no other thread is running one (it "leads"), for every ready
// generation, until its own piece is there; otherwise it waits for the running pass. So streams
// read from several threads, or a batch collected at once, share every weight read, and nothing
// runs while nobody asks (a stream nobody reads costs nothing beyond its lookahead).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "models/model.h"

namespace wren {

class Engine;
class Generation;

class Scheduler {
 public:
  explicit Scheduler(Engine& engine) : engine_(engine) {}
  // Generations still running finish as "cancelled".
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // The generation takes part from the next pass on.
  void submit(std::shared_ptr<Generation> g);
  // The next piece of g (see Generator::next): runs passes on this thread while no other thread
  // does, else waits for them. cancel is polled while waiting and between layers of a pass this
  // thread runs (Ctrl-C): g is then cancelled and Interrupted thrown.
  std::optional<std::string> next(Generation& g, const CancelFn& cancel);
  // A generation was cancelled (its owner went away): cancelled generations end now when no pass
  // is running (their pages go back at once), else the running pass's thread ends them after it.
  void release_cancelled();

  // Counters since the engine started: forward passes run, tokens they took, and the most
  // generations one pass served.
  struct Stats {
    int64_t passes = 0, tokens = 0, max_sequences = 0;
  };
  Stats stats() const;

 private:
  // Under mu_: removes finished and cancelled generations (ending the cancelled ones).
  void sweep_locked();
  // Runs one pass over the ready generations (mu_ not held; busy_ set by the caller). Returns
  // false when no generation was ready.
  bool run_pass(const CancelFn& cancel, Generation& asking, bool& interrupted);

  Engine& engine_;
  mutable std::mutex mu_;
  std::condition_variable cv_;  // a pass ended
  std::vector<std::shared_ptr<Generation>> running_;
  bool busy_ = false;  // a thread is running a pass
  Stats stats_;
};

}  // namespace wren
