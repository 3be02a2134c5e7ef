#include "format/tensor_source.h"

#include <cstring>

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

bool GgufValue::is_signed() const {
  return type == GgufType::I8 || type == GgufType::I16 || type == GgufType::I32 || type == GgufType::I64;
}

namespace {

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
void store(std::string* out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out->append(b, sizeof(T));
}

// Decodes one element of type t at p (the encoding was validated when it was read or written).
const uint8_t* decode(GgufType t, const uint8_t* p, const std::shared_ptr<const std::string>& buf,
                      GgufValue* out) {
  out->type = t;
  switch (t) {
    case GgufType::U8: case GgufType::BOOL: out->u = load<uint8_t>(p); return p + 1;
    case GgufType::I8: out->i = load<int8_t>(p); return p + 1;
    case GgufType::U16: out->u = load<uint16_t>(p); return p + 2;
    case GgufType::I16: out->i = load<int16_t>(p); return p + 2;
    case GgufType::U32: out->u = load<uint32_t>(p); return p + 4;
    case GgufType::I32: out->i = load<int32_t>(p); return p + 4;
    case GgufType::F32: out->f = load<float>(p); return p + 4;
    case GgufType::U64: out->u = load<uint64_t>(p); return p + 8;
    case GgufType::I64: out->i = load<int64_t>(p); return p + 8;
    case GgufType::F64: out->f = load<double>(p); return p + 8;
    case GgufType::STRING: {
      const uint64_t n = load<uint64_t>(p);
      out->s.assign(reinterpret_cast<const char*>(p + 8), static_cast<size_t>(n));
      return p + 8 + n;
    }
    case GgufType::ARRAY: {
      out->elem_type = static_cast<GgufType>(load<uint32_t>(p));
      out->count = load<uint64_t>(p + 4);
      out->encoded = buf;
      const uint8_t* base = reinterpret_cast<const uint8_t*>(buf->data());
      out->begin = static_cast<size_t>(p + 12 - base);
      const uint8_t* q = p + 12;
      GgufValue skip;
      for (uint64_t k = 0; k < out->count; ++k) q = decode(out->elem_type, q, buf, &skip);
      out->end = static_cast<size_t>(q - base);
      return q;
    }
  }
  throw FormatError("internal: unknown GGUF value type");
}

void encode_value(const GgufValue& v, std::string* out) {
  switch (v.type) {
    case GgufType::U8: case GgufType::BOOL: store<uint8_t>(out, static_cast<uint8_t>(v.u)); break;
    case GgufType::I8: store<int8_t>(out, static_cast<int8_t>(v.i)); break;
    case GgufType::U16: store<uint16_t>(out, static_cast<uint16_t>(v.u)); break;
    case GgufType::I16: store<int16_t>(out, static_cast<int16_t>(v.i)); break;
    case GgufType::U32: store<uint32_t>(out, static_cast<uint32_t>(v.u)); break;
    case GgufType::I32: store<int32_t>(out, static_cast<int32_t>(v.i)); break;
    case GgufType::F32: store<float>(out, static_cast<float>(v.f)); break;
    case GgufType::U64: store<uint64_t>(out, v.u); break;
    case GgufType::I64: store<int64_t>(out, v.i); break;
    case GgufType::F64: store<double>(out, v.f); break;
    case GgufType::STRING:
      store<uint64_t>(out, v.s.size());
      out->append(v.s);
      break;
    case GgufType::ARRAY:
      store<uint32_t>(out, static_cast<uint32_t>(v.elem_type));
      store<uint64_t>(out, v.count);
      if (v.encoded) out->append(*v.encoded, v.begin, v.end - v.begin);
      break;
  }
}

}  // namespace

void GgufValue::for_each(const std::function<void(size_t, const GgufValue&)>& fn) const {
  if (type != GgufType::ARRAY || count == 0) return;
  const uint8_t* p = reinterpret_cast<const uint8_t*>(encoded->data()) + begin;
  GgufValue e;
  for (uint64_t k = 0; k < count; ++k) {
    p = decode(elem_type, p, encoded, &e);
    fn(static_cast<size_t>(k), e);
  }
}

std::vector<GgufValue> GgufValue::elements() const {
  std::vector<GgufValue> out;
  out.reserve(size());
  for_each([&](size_t, const GgufValue& e) { out.push_back(e); });
  return out;
}

void GgufValue::encode(std::string* out) const { encode_value(*this, out); }

GgufValue GgufValue::array_of(GgufType elem_type, const std::vector<GgufValue>& elems) {
  auto buf = std::make_shared<std::string>();
  for (const GgufValue& e : elems) {
    if (e.type != elem_type) throw FormatError("internal: array element of the wrong type");
    e.encode(buf.get());
  }
  GgufValue v;
  v.type = GgufType::ARRAY;
  v.elem_type = elem_type;
  v.count = elems.size();
  v.begin = 0;
  v.end = buf->size();
  v.encoded = std::move(buf);
  return v;
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
  out.reserve(v->size());
  v->for_each([&](size_t, const GgufValue& e) { out.push_back(e.s); });
  return out;
}

std::vector<int64_t> TensorSource::get_int_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail(key, "required key is missing");
  if (v->type != GgufType::ARRAY) fail(key, "expected an array of integers");
  std::vector<int64_t> out;
  out.reserve(v->size());
  v->for_each([&](size_t, const GgufValue& e) {
    if (!e.is_integer()) fail(key, str_cat("expected integers, found ", gguf_type_name(e.type)));
    out.push_back(e.is_signed() ? e.i : static_cast<int64_t>(e.u));
  });
  return out;
}

}  // namespace wren
