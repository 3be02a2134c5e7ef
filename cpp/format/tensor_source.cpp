#include "format/tensor_source.h"

#include "util/errors.h"

namespace wren {

const char* gguf_type_name(GgufType t) {
  static const char* names[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                "bool", "string", "array", "uint64", "int64", "float64"};
  const auto k = static_cast<uint32_t>(t);
  return k < 13 ? names[k] : "?";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16:
    case GgufType::U32: case GgufType::I32: case GgufType::U64: case GgufType::I64: return true;
    default: return false;
  }
}

uint64_t GgufTensor::n_elements() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;  // validated not to overflow when read
  return n;
}

std::string GgufTensor::shape_str() const {
  std::string s = "[";
  for (size_t k = 0; k < shape.size(); ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  return s + "]";
}

void TensorSource::fail(const std::string& field, const std::string& what) const {
  throw FormatError(str_cat(path(), ": ", field, ": ", what));
}

void TensorSource::add_value(std::string key, GgufValue v) {
  if (kv_.count(key)) fail(key, "duplicate metadata key");
  key_order_.push_back(key);
  kv_.emplace(std::move(key), std::move(v));
}

void TensorSource::add_tensor(GgufTensor t) {
  if (tensor_index_.count(t.name)) fail("tensor '" + t.name + "'", "duplicate tensor name");
  tensor_index_[t.name] = tensors_.size();
  tensors_.push_back(std::move(t));
}

const GgufValue* TensorSource::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufTensor* TensorSource::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::string TensorSource::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail(key, "required key is missing");
  if (v->type != GgufType::STRING) fail(key, str_cat("expected a string, found ", gguf_type_name(v->type)));
  return v->s;
}

std::string TensorSource::get_string(const std::string& key, const std::string& def) const {
  return has(key) ? get_string(key) : def;
}

uint64_t TensorSource::get_uint(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail(key, "required key is missing");
  if (v->is_integer()) {
    const bool is_signed = v->type == GgufType::I8 || v->type == GgufType::I16 ||
                           v->type == GgufType::I32 || v->type == GgufType::I64;
    if (is_signed && v->i < 0) fail(key, str_cat("expected a non-negative integer, found ", v->i));
    return is_signed ? static_cast<uint64_t>(v->i) : v->u;
  }
  fail(key, str_cat("expected an integer, found ", gguf_type_name(v->type)));
}

uint64_t TensorSource::get_uint(const std::string& key, uint64_t def) const {
  return has(key) ? get_uint(key) : def;
}

double TensorSource::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail(key, "required key is missing");
  if (v->is_float()) return v->f;
  if (v->is_integer()) return static_cast<double>(get_uint(key));
  fail(key, str_cat("expected a number, found ", gguf_type_name(v->type)));
}

double TensorSource::get_float(const std::string& key, double def) const {
  return has(key) ? get_float(key) : def;
}

bool TensorSource::get_bool(const std::string& key, bool def) const {
  const GgufValue* v = find(key);
  if (!v) return def;
  if (v->type != GgufType::BOOL) fail(key, str_cat("expected a bool, found ", gguf_type_name(v->type)));
  return v->u != 0;
}

std::vector<std::string> TensorSource::get_string_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail(key, "required key is missing");
  if (v->type != GgufType::ARRAY || v->elem_type != GgufType::STRING)
    fail(key, "expected an array of strings");
  std::vector<std::string> out;
  out.reserve(v->arr.size());
  for (const GgufValue& e : v->arr) out.push_back(e.s);
  return out;
}

std::vector<int64_t> TensorSource::get_int_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail(key, "required key is missing");
  if (v->type != GgufType::ARRAY) fail(key, "expected an array of integers");
  std::vector<int64_t> out;
  out.reserve(v->arr.size());
  for (const GgufValue& e : v->arr) {
    if (!e.is_integer()) fail(key, str_cat("expected integers, found ", gguf_type_name(e.type)));
    const bool is_signed = e.type == GgufType::I8 || e.type == GgufType::I16 ||
                           e.type == GgufType::I32 || e.type == GgufType::I64;
    out.push_back(is_signed ? e.i : static_cast<int64_t>(e.u));
  }
  return out;
}

}  // namespace wren
