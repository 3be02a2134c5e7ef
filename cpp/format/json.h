// A strict RFC 8259 JSON reader for model folders (config.json, tokenizer.json, safetensors headers).
// Input is treated as hostile: nesting depth, sizes and UTF-8 are checked, and every error is a
// FormatError naming the file, the byte offset and what was expected. Values remember where they sit
// in the document, so typed getters report a JSON path:
//   config.json: $.rope_scaling.factor: expected a number, found string
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace wren {

class JsonValue {
 public:
  enum class Kind { kNull, kBool, kInt, kDouble, kString, kArray, kObject };
  using Member = std::pair<std::string, JsonValue>;

  Kind kind() const { return kind_; }
  const char* kind_name() const;
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kDouble; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }

  // Typed getters: FormatError "<file>: <path>: expected ..., found ..." on a kind mismatch.
  bool as_bool() const;
  int64_t as_int() const;     // an integer (a double with an exact integer value is accepted)
  double as_double() const;   // any number
  const std::string& as_string() const;
  const std::vector<JsonValue>& as_array() const;
  const std::vector<Member>& as_object() const;

  // Object members. find: nullptr when absent (or when this is not an object); at: required.
  const JsonValue* find(const std::string& key) const;
  const JsonValue& at(const std::string& key) const;
  // A member that is absent or null counts as missing.
  const JsonValue* find_non_null(const std::string& key) const;

  // "$.model.vocab[3]": where this value sits in its document.
  std::string path() const;
  const std::string& file() const { return *file_; }
  [[noreturn]] void fail(const std::string& what) const;  // FormatError "<file>: <path>: what"

 private:
  friend class JsonParser;
  friend struct JsonDocument;
  void link(const JsonValue* parent, const std::string* file);

  Kind kind_ = Kind::kNull;
  bool b_ = false;
  int64_t i_ = 0;
  double d_ = 0.0;
  std::string s_;
  std::vector<JsonValue> arr_;
  std::vector<Member> obj_;
  const JsonValue* parent_ = nullptr;
  const std::string* file_ = nullptr;
};

// A parsed document; the root and its file name stay at fixed addresses (values point to them).
struct JsonDocument {
  std::unique_ptr<std::string> file;
  std::unique_ptr<JsonValue> root;
};

// Limits: nesting depth 128; the text size is the caller's (the bytes handed in).
JsonDocument parse_json(const char* data, size_t size, const std::string& file);
// Reads and parses a whole file; FormatError when it is missing, larger than max_bytes or malformed.
JsonDocument read_json_file(const std::string& path, uint64_t max_bytes = uint64_t(1) << 30);

}  // namespace wren
