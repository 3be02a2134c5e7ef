// Typed exceptions of libwrenlm. Library code never exits: it throws one of these, and the
// bindings map each to its Python class (see bindings/errors.cpp).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace wren {

namespace detail {
// Messages quote strings from files (keys, names), which may hold NUL or other control bytes: written
// as \xNN, so that what() (a C string) carries the whole message and a terminal shows it safely.
inline std::string escape_controls(const std::string& msg) {
  std::string out;
  out.reserve(msg.size());
  static const char kHex[] = "0123456789abcdef";
  for (const char c : msg) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\n' && c != '\t') || u == 0x7f) {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out;
}
}  // namespace detail

// Base of every error wrenlm raises on purpose.
class WrenError : public std::runtime_error {
 public:
  explicit WrenError(const std::string& msg) : std::runtime_error(detail::escape_controls(msg)) {}
};

// A file is malformed or inconsistent: names the file, the field, what was expected and found.
class FormatError : public WrenError {
 public:
  using WrenError::WrenError;
};

// A well-formed file asks for something we do not implement (architecture, tensor type...).
class UnsupportedError : public WrenError {
 public:
  using WrenError::WrenError;
};

// Prompt plus generation would exceed the context window.
class ContextOverflowError : public WrenError {
 public:
  using WrenError::WrenError;
};

// A caller passed a bad argument (maps to Python's ValueError).
class InvalidArgument : public WrenError {
 public:
  using WrenError::WrenError;
};

// A long computation was cancelled (Ctrl-C in Python); maps to KeyboardInterrupt.
class Interrupted : public WrenError {
 public:
  Interrupted() : WrenError("interrupted") {}
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

// Builds a message from streamable parts: str_cat("tensor ", name, ": ", n, " bytes").
template <typename... Parts>
std::string str_cat(const Parts&... parts) {
  std::ostringstream os;
  detail::append(os, parts...);
  return os.str();
}

}  // namespace wren

// WREN_CHECK(cond, ErrorType, parts...): throw ErrorType(message) when cond is false.
#define WREN_CHECK(cond, Err, ...)                      \
  do {                                                  \
    if (!(cond)) throw Err(::wren::str_cat(__VA_ARGS__)); \
  } while (0)
