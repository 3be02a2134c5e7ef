#include "format/json.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <unordered_set>

#include "tokenizer/unicode.h"  // utf8_append
#include "util/errors.h"
#include "util/mmap_file.h"

namespace wren {
namespace {

constexpr int kMaxDepth = 128;

}  // namespace

// Recursive descent over the bytes; pos_ is the offset named in every error.
class JsonParser {
 public:
  JsonParser(const char* data, size_t size, const std::string& file) : p_(data), n_(size), file_(file) {}

  void parse_document(JsonValue* root) {
    skip_ws();
    parse_value(root, 0);
    skip_ws();
    if (pos_ != n_) fail("expected the end of the document after the top-level value");
    root->link(nullptr, &file_);
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    std::string found;
    if (pos_ >= n_) {
      found = "end of file";
    } else {
      const unsigned char c = static_cast<unsigned char>(p_[pos_]);
      found = c >= 32 && c < 127 ? str_cat("'", static_cast<char>(c), "'") : str_cat("byte 0x", std::hex, int(c));
    }
    throw FormatError(str_cat(file_, ": invalid JSON at byte ", pos_, ": ", what, ", found ", found));
  }

  void skip_ws() {
    while (pos_ < n_ && (p_[pos_] == ' ' || p_[pos_] == '\t' || p_[pos_] == '\n' || p_[pos_] == '\r')) ++pos_;
  }

  void expect_literal(const char* lit) {
    const size_t len = std::strlen(lit);
    if (n_ - pos_ < len || std::memcmp(p_ + pos_, lit, len) != 0) fail(str_cat("expected '", lit, "'"));
    pos_ += len;
  }

  void parse_value(JsonValue* v, int depth) {
    if (depth > kMaxDepth) fail(str_cat("nesting deeper than ", kMaxDepth, " levels"));
    if (pos_ >= n_) fail("expected a value");
    switch (p_[pos_]) {
      case '{': parse_object(v, depth); return;
      case '[': parse_array(v, depth); return;
      case '"': v->kind_ = JsonValue::Kind::kString; parse_string(&v->s_); return;
      case 't': expect_literal("true"); v->kind_ = JsonValue::Kind::kBool; v->b_ = true; return;
      case 'f': expect_literal("false"); v->kind_ = JsonValue::Kind::kBool; v->b_ = false; return;
      case 'n': expect_literal("null"); v->kind_ = JsonValue::Kind::kNull; return;
      default:
        if (p_[pos_] == '-' || (p_[pos_] >= '0' && p_[pos_] <= '9')) {
          parse_number(v);
          return;
        }
        fail("expected a value (object, array, string, number, true, false or null)");
    }
  }

  void parse_object(JsonValue* v, int depth) {
    v->kind_ = JsonValue::Kind::kObject;
    ++pos_;  // '{'
    skip_ws();
    if (pos_ < n_ && p_[pos_] == '}') {
      ++pos_;
      return;
    }
    std::unordered_set<std::string> seen;
    for (;;) {
      skip_ws();
      if (pos_ >= n_ || p_[pos_] != '"') fail("expected a string key");
      const size_t key_pos = pos_;
      std::string key;
      parse_string(&key);
      if (!seen.insert(key).second) {
        pos_ = key_pos;
        fail(str_cat("duplicate key \"", key, "\" in an object"));
      }
      skip_ws();
      if (pos_ >= n_ || p_[pos_] != ':') fail("expected ':' after an object key");
      ++pos_;
      skip_ws();
      v->obj_.emplace_back(std::move(key), JsonValue());
      parse_value(&v->obj_.back().second, depth + 1);
      skip_ws();
      if (pos_ < n_ && p_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < n_ && p_[pos_] == '}') {
        ++pos_;
        return;
      }
      fail("expected ',' or '}' in an object");
    }
  }

  void parse_array(JsonValue* v, int depth) {
    v->kind_ = JsonValue::Kind::kArray;
    ++pos_;  // '['
    skip_ws();
    if (pos_ < n_ && p_[pos_] == ']') {
      ++pos_;
      return;
    }
    for (;;) {
      skip_ws();
      v->arr_.emplace_back();
      parse_value(&v->arr_.back(), depth + 1);
      skip_ws();
      if (pos_ < n_ && p_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < n_ && p_[pos_] == ']') {
        ++pos_;
        return;
      }
      fail("expected ',' or ']' in an array");
    }
  }

  uint32_t parse_hex4() {
    if (n_ - pos_ < 4) fail("expected 4 hex digits after \\u");
    uint32_t cp = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = p_[pos_];
      uint32_t d;
      if (c >= '0' && c <= '9') d = static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') d = static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') d = static_cast<uint32_t>(c - 'A' + 10);
      else fail("expected a hex digit in a \\u escape");
      cp = cp * 16 + d;
      ++pos_;
    }
    return cp;
  }

  // Copies one UTF-8 sequence starting at pos_, rejecting overlong forms, surrogates and > U+10FFFF.
  void copy_utf8(std::string* out) {
    const auto b0 = static_cast<unsigned char>(p_[pos_]);
    size_t len;
    uint32_t cp;
    if (b0 >= 0xC2 && b0 <= 0xDF) len = 2, cp = b0 & 0x1F;
    else if (b0 >= 0xE0 && b0 <= 0xEF) len = 3, cp = b0 & 0x0F;
    else if (b0 >= 0xF0 && b0 <= 0xF4) len = 4, cp = b0 & 0x07;
    else fail("expected valid UTF-8 in a string");
    if (n_ - pos_ < len) fail("expected valid UTF-8 in a string (truncated sequence)");
    for (size_t k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(p_[pos_ + k]);
      if ((b & 0xC0) != 0x80) fail("expected valid UTF-8 in a string (bad continuation byte)");
      cp = (cp << 6) | (b & 0x3F);
    }
    const bool overlong = (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
      fail("expected valid UTF-8 in a string (overlong form, surrogate or code point past U+10FFFF)");
    out->append(p_ + pos_, len);
    pos_ += len;
  }

  void parse_string(std::string* out) {
    ++pos_;  // opening quote
    for (;;) {
      if (pos_ >= n_) fail("expected '\"' to close a string");
      const auto c = static_cast<unsigned char>(p_[pos_]);
      if (c == '"') {
        ++pos_;
        return;
      }
      if (c < 0x20) fail("expected no raw control characters in a string (escape them)");
      if (c >= 0x80) {
        copy_utf8(out);
        continue;
      }
      if (c != '\\') {
        // A run of plain ASCII in one append.
        size_t end = pos_ + 1;
        while (end < n_) {
          const auto d = static_cast<unsigned char>(p_[end]);
          if (d == '"' || d == '\\' || d < 0x20 || d >= 0x80) break;
          ++end;
        }
        out->append(p_ + pos_, end - pos_);
        pos_ = end;
        continue;
      }
      ++pos_;
      if (pos_ >= n_) fail("expected an escape character after '\\'");
      const char e = p_[pos_++];
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          uint32_t cp = parse_hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail("expected a high surrogate before a low surrogate in \\u escapes");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (n_ - pos_ < 2 || p_[pos_] != '\\' || p_[pos_ + 1] != 'u')
              fail("expected a \\u low surrogate after a high surrogate");
            pos_ += 2;
            const uint32_t lo = parse_hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("expected a low surrogate (\\uDC00..\\uDFFF)");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          utf8_append(out, cp);
          break;
        }
        default:
          --pos_;
          fail("expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u");
      }
    }
  }

  void parse_number(JsonValue* v) {
    const size_t start = pos_;
    bool is_int = true;
    if (p_[pos_] == '-') ++pos_;
    if (pos_ >= n_ || !(p_[pos_] >= '0' && p_[pos_] <= '9')) fail("expected a digit in a number");
    if (p_[pos_] == '0') {
      ++pos_;
      if (pos_ < n_ && p_[pos_] >= '0' && p_[pos_] <= '9') fail("expected no leading zeros in a number");
    } else {
      while (pos_ < n_ && p_[pos_] >= '0' && p_[pos_] <= '9') ++pos_;
    }
    if (pos_ < n_ && p_[pos_] == '.') {
      is_int = false;
      ++pos_;
      if (pos_ >= n_ || !(p_[pos_] >= '0' && p_[pos_] <= '9')) fail("expected a digit after '.'");
      while (pos_ < n_ && p_[pos_] >= '0' && p_[pos_] <= '9') ++pos_;
    }
    if (pos_ < n_ && (p_[pos_] == 'e' || p_[pos_] == 'E')) {
      is_int = false;
      ++pos_;
      if (pos_ < n_ && (p_[pos_] == '+' || p_[pos_] == '-')) ++pos_;
      if (pos_ >= n_ || !(p_[pos_] >= '0' && p_[pos_] <= '9')) fail("expected a digit in an exponent");
      while (pos_ < n_ && p_[pos_] >= '0' && p_[pos_] <= '9') ++pos_;
    }
    const char* first = p_ + start;
    const char* last = p_ + pos_;
    if (is_int) {
      int64_t i = 0;
      const auto r = std::from_chars(first, last, i);
      if (r.ec == std::errc() && r.ptr == last) {
        v->kind_ = JsonValue::Kind::kInt;
        v->i_ = i;
        v->d_ = static_cast<double>(i);
        return;
      }
      // Out of int64 range: keep it as a double.
    }
    double d = 0.0;
    const auto r = std::from_chars(first, last, d);
    if (r.ptr != last || (r.ec != std::errc() && r.ec != std::errc::result_out_of_range)) {
      pos_ = start;
      fail("expected a number");
    }
    if (!std::isfinite(d)) {
      pos_ = start;
      fail("expected a number within double range");
    }
    v->kind_ = JsonValue::Kind::kDouble;
    v->d_ = d;
  }

  const char* p_;
  size_t n_;
  const std::string& file_;
  size_t pos_ = 0;
};

const char* JsonValue::kind_name() const {
  switch (kind_) {
    case Kind::kNull: return "null";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "integer";
    case Kind::kDouble: return "number";
    case Kind::kString: return "string";
    case Kind::kArray: return "array";
    case Kind::kObject: return "object";
  }
  return "?";
}

void JsonValue::link(const JsonValue* parent, const std::string* file) {
  parent_ = parent;
  file_ = file;
  for (JsonValue& c : arr_) c.link(this, file);
  for (Member& m : obj_) m.second.link(this, file);
}

std::string JsonValue::path() const {
  if (!parent_) return "$";
  std::string step;
  if (parent_->kind_ == Kind::kArray) {
    step = str_cat("[", this - parent_->arr_.data(), "]");
  } else {
    for (const Member& m : parent_->obj_)
      if (&m.second == this) step = "." + m.first;
  }
  return parent_->path() + step;
}

void JsonValue::fail(const std::string& what) const {
  throw FormatError(str_cat(file_ ? *file_ : std::string("<json>"), ": ", path(), ": ", what));
}

bool JsonValue::as_bool() const {
  if (kind_ != Kind::kBool) fail(str_cat("expected a bool, found ", kind_name()));
  return b_;
}

int64_t JsonValue::as_int() const {
  if (kind_ == Kind::kInt) return i_;
  if (kind_ == Kind::kDouble && std::floor(d_) == d_ && std::fabs(d_) < 9.2e18) return static_cast<int64_t>(d_);
  fail(str_cat("expected an integer, found ", kind_name()));
}

double JsonValue::as_double() const {
  if (!is_number()) fail(str_cat("expected a number, found ", kind_name()));
  return d_;
}

const std::string& JsonValue::as_string() const {
  if (kind_ != Kind::kString) fail(str_cat("expected a string, found ", kind_name()));
  return s_;
}

const std::vector<JsonValue>& JsonValue::as_array() const {
  if (kind_ != Kind::kArray) fail(str_cat("expected an array, found ", kind_name()));
  return arr_;
}

const std::vector<JsonValue::Member>& JsonValue::as_object() const {
  if (kind_ != Kind::kObject) fail(str_cat("expected an object, found ", kind_name()));
  return obj_;
}

const JsonValue* JsonValue::find(const std::string& key) const {
  if (kind_ != Kind::kObject) return nullptr;
  for (const Member& m : obj_)
    if (m.first == key) return &m.second;
  return nullptr;
}

const JsonValue* JsonValue::find_non_null(const std::string& key) const {
  const JsonValue* v = find(key);
  return v && !v->is_null() ? v : nullptr;
}

const JsonValue& JsonValue::at(const std::string& key) const {
  as_object();
  const JsonValue* v = find(key);
  if (!v) fail(str_cat("required key \"", key, "\" is missing"));
  return *v;
}

JsonDocument parse_json(const char* data, size_t size, const std::string& file) {
  JsonDocument doc;
  doc.file = std::make_unique<std::string>(file);
  doc.root = std::make_unique<JsonValue>();
  JsonParser(data, size, *doc.file).parse_document(doc.root.get());
  return doc;
}

JsonDocument read_json_file(const std::string& path, uint64_t max_bytes) {
  MappedFile f(path);
  if (f.size() > max_bytes)
    throw FormatError(str_cat(path, ": ", f.size(), " bytes is larger than the ", max_bytes,
                              "-byte limit for a JSON file"));
  return parse_json(reinterpret_cast<const char*>(f.data()), f.size(), path);
}

}  // namespace wren
