// Per-operation wall-time accounting, on when WRENLM_PROFILE=1 (read once). Off, a scope costs one
// predictable branch. Used by the forward pass; read through wrenlm._core.profile().
#pragma once

#include <chrono>
#include <map>
#include <string>

namespace wren::profile {

bool enabled();
void add(const char* op, double seconds, int64_t calls = 1);
std::map<std::string, std::pair<double, int64_t>> take();  // op -> (seconds, calls); resets

class Scope {
 public:
  explicit Scope(const char* op) : op_(enabled() ? op : nullptr) {
    if (op_) t0_ = std::chrono::steady_clock::now();
  }
  ~Scope() {
    if (op_) add(op_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  const char* op_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace wren::profile
