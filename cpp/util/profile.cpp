#include "util/profile.h"

#include <cstdlib>
#include <cstring>
#include <mutex>

namespace wren::profile {
namespace {

std::mutex& mu() {
  static std::mutex m;
  return m;
}
std::map<std::string, std::pair<double, int64_t>>& table() {
  static std::map<std::string, std::pair<double, int64_t>> t;
  return t;
}

}  // namespace

bool enabled() {
  static const bool on = [] {
    const char* v = std::getenv("WRENLM_PROFILE");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  return on;
}

void add(const char* op, double seconds, int64_t calls) {
  std::lock_guard<std::mutex> lock(mu());
  auto& e = table()[op];
  e.first += seconds;
  e.second += calls;
}

std::map<std::string, std::pair<double, int64_t>> take() {
  std::lock_guard<std::mutex> lock(mu());
  auto out = std::move(table());
  table().clear();
  return out;
}

}  // namespace wren::profile
