#include "format/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "format/json.h"
#include "util/errors.h"

namespace wren {
namespace {

constexpr uint64_t kMaxHeaderBytes = uint64_t(100) << 20;  // the reference implementation's own cap
constexpr size_t kMaxRank = 4;

struct DTypeSpec {
  const char* name;
  uint32_t bytes;
  bool supported;
  DType dtype;
};

// Every dtype the format defines (so sizes are checked for all of them); only floats are weights here.
constexpr DTypeSpec kDTypes[] = {
    {"F32", 4, true, DType::F32},     {"F16", 2, true, DType::F16},     {"BF16", 2, true, DType::BF16},
    {"F64", 8, false, DType::F64},    {"I64", 8, false, DType::I64},    {"U64", 8, false, DType::I64},
    {"I32", 4, false, DType::I32},    {"U32", 4, false, DType::I32},    {"I16", 2, false, DType::I16},
    {"U16", 2, false, DType::I16},    {"I8", 1, false, DType::I8},      {"U8", 1, false, DType::I8},
    {"BOOL", 1, false, DType::I8},    {"F8_E4M3", 1, false, DType::I8}, {"F8_E5M2", 1, false, DType::I8},
};

const DTypeSpec* find_dtype(const std::string& name) {
  for (const DTypeSpec& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }

std::string shape_str(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t k = 0; k < shape.size(); ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  return s + "]";
}

}  // namespace

uint64_t SafetensorsTensor::n_elements() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;  // checked when read
  return n;
}

void SafetensorsFile::fail(const std::string& field, const std::string& what) const {
  throw FormatError(str_cat(path(), ": ", field, ": ", what));
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const SafetensorsTensor& SafetensorsFile::require_supported(const SafetensorsTensor& t) const {
  if (!t.supported)
    throw UnsupportedError(str_cat(path(), ": tensor '", t.name, "' has dtype ", t.dtype_name,
                                   "; model weights must be F32, F16 or BF16"));
  return t;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(std::make_unique<MappedFile>(path)) {
  const uint64_t size = file_->size();
  if (size < 8) fail("header length", str_cat("file is ", size, " bytes; a safetensors file starts with 8"));
  uint64_t header_len;
  std::memcpy(&header_len, file_->data(), 8);  // little-endian on every platform we build for
  if (header_len > size - 8)
    fail("header length", str_cat(header_len, " bytes does not fit in the ", size, "-byte file (truncated, or not "
                                              "a safetensors file?)"));
  if (header_len > kMaxHeaderBytes)
    fail("header length", str_cat(header_len, " bytes is over the ", kMaxHeaderBytes, "-byte limit"));
  if (header_len < 2) fail("header", str_cat("expected a JSON object, found ", header_len, " bytes"));
  const char* header = reinterpret_cast<const char*>(file_->data() + 8);
  if (header[0] != '{') fail("header", "expected a JSON object starting with '{'");
  const JsonDocument doc = parse_json(header, static_cast<size_t>(header_len), path + " (header)");
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = size - data_start;
  const uint8_t* data = file_->data() + data_start;

  struct Range {
    uint64_t begin, end;
    size_t tensor;
  };
  std::vector<Range> ranges;
  for (const JsonValue::Member& m : doc.root->as_object()) {
    if (m.first == "__metadata__") {
      if (!m.second.is_object()) m.second.fail("expected an object of strings");
      continue;
    }
    const std::string field = "tensor '" + m.first + "'";
    const JsonValue& v = m.second;
    if (!v.is_object()) v.fail(str_cat("expected an object with dtype, shape and data_offsets, found ", v.kind_name()));
    for (const JsonValue::Member& k : v.as_object())
      if (k.first != "dtype" && k.first != "shape" && k.first != "data_offsets")
        k.second.fail("unexpected key (expected dtype, shape, data_offsets)");
    SafetensorsTensor t;
    t.name = m.first;
    t.dtype_name = v.at("dtype").as_string();
    const DTypeSpec* spec = find_dtype(t.dtype_name);
    if (!spec) v.at("dtype").fail(str_cat("unknown dtype '", t.dtype_name, "'"));
    t.supported = spec->supported;
    t.dtype = spec->dtype;
    const JsonValue& shape = v.at("shape");
    const auto& dims = shape.as_array();
    if (dims.size() > kMaxRank) shape.fail(str_cat("rank must be 0..", kMaxRank, ", found ", dims.size()));
    uint64_t n_elem = 1;
    for (const JsonValue& d : dims) {
      const int64_t x = d.as_int();
      if (x < 0 || x > (int64_t(1) << 40)) d.fail(str_cat("dimension must be in 0..2^40, found ", x));
      if (mul_overflows(n_elem, static_cast<uint64_t>(x), &n_elem)) shape.fail("element count overflows");
      t.shape.push_back(static_cast<uint64_t>(x));
    }
    uint64_t expect_bytes;
    if (mul_overflows(n_elem, spec->bytes, &expect_bytes)) shape.fail("byte size overflows");
    const JsonValue& offs = v.at("data_offsets");
    const auto& o = offs.as_array();
    if (o.size() != 2) offs.fail(str_cat("expected [begin, end], found ", o.size(), " values"));
    const int64_t begin = o[0].as_int(), end = o[1].as_int();
    if (begin < 0 || end < begin)
      offs.fail(str_cat("expected 0 <= begin <= end, found [", begin, ", ", end, "]"));
    if (static_cast<uint64_t>(end) > data_size)
      offs.fail(str_cat("[", begin, ", ", end, ") runs past the end of the ", data_size,
                        "-byte data section (truncated file?)"));
    if (static_cast<uint64_t>(end - begin) != expect_bytes)
      offs.fail(str_cat("covers ", end - begin, " bytes but ", t.dtype_name, " ", shape_str(t.shape), " needs ",
                        expect_bytes));
    t.data = data + begin;
    t.nbytes = expect_bytes;
    ranges.push_back({static_cast<uint64_t>(begin), static_cast<uint64_t>(end), tensors_.size()});
    index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t k = 1; k < ranges.size(); ++k)
    if (ranges[k].begin < ranges[k - 1].end)
      fail("tensor '" + tensors_[ranges[k].tensor].name + "'",
           str_cat("data_offsets [", ranges[k].begin, ", ", ranges[k].end, ") overlap tensor '",
                   tensors_[ranges[k - 1].tensor].name, "' at [", ranges[k - 1].begin, ", ", ranges[k - 1].end, ")"));
}

}  // namespace wren
