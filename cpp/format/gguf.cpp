#include "format/gguf.h"

#include <algorithm>
#include <cstring>
#include <vector>
#include <limits>

#include "tokenizer/unicode.h"
#include "util/errors.h"

namespace wren {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint64_t kMaxDims = 4;
constexpr int kMaxNesting = 8;

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return true;
  *out = a * b;
  return false;
}

// Sequential reader over the mapped bytes; every read is bounds-checked and names the field.
class Cursor {
 public:
  Cursor(const GgufFile& f, const uint8_t* data, uint64_t size) : f_(f), data_(data), size_(size) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  void need(uint64_t n, const std::string& field) const {
    if (n > remaining())
      f_.fail(field, str_cat("needs ", n, " bytes at offset ", pos_, " but the file has only ",
                             remaining(), " left (truncated?)"));
  }

  template <typename T>
  T read(const std::string& field) {
    need(sizeof(T), field);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  const uint8_t* here() const { return data_ + pos_; }
  void skip(uint64_t n, const std::string& field) {
    need(n, field);
    pos_ += n;
  }

  // The field's name is only extended into a message on failure: vocabularies hold ~10^5 strings.
  std::string read_string(const std::string& field) {
    const uint64_t len = skip_string(field);
    return std::string(reinterpret_cast<const char*>(data_ + pos_ - len), static_cast<size_t>(len));
  }

  // Checks a string (length in range, UTF-8) and moves past it; returns its length.
  uint64_t skip_string(const std::string& field) {
    if (remaining() < sizeof(uint64_t)) need(sizeof(uint64_t), field + " (string length)");
    const uint64_t len = read<uint64_t>(field);
    if (len > remaining()) need(len, field + str_cat(" (string of ", len, " bytes)"));
    const char* p = reinterpret_cast<const char*>(data_ + pos_);
    const size_t bad = utf8_first_invalid(p, static_cast<size_t>(len));
    if (bad != len)  // GGUF strings are UTF-8; anything else would fail later, far from its cause
      f_.fail(field, str_cat("string of ", len, " bytes at offset ", pos_, " is not valid UTF-8 (byte ", bad,
                             " of it is 0x", std::hex, static_cast<int>(static_cast<uint8_t>(p[bad])), ")"));
    pos_ += len;
    return len;
  }

 private:
  const GgufFile& f_;
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

// Smallest encoded size of one value of a type: lets us reject absurd array counts up front.
uint64_t min_encoded_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: case GgufType::STRING: return 8;
    case GgufType::ARRAY: return 12;
  }
  return 1;
}

bool valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::F64); }

// Bytes of one value of a fixed-size type; 0 for STRING and ARRAY.
uint64_t fixed_size(GgufType t) {
  return t == GgufType::STRING || t == GgufType::ARRAY ? 0 : min_encoded_size(t);
}

// Reads an array's element type and count, checked against the bytes left.
std::pair<GgufType, uint64_t> read_array_head(const GgufFile& f, Cursor& c, const std::string& field, int depth) {
  if (depth >= kMaxNesting) f.fail(field, str_cat("arrays nested deeper than ", kMaxNesting));
  const uint32_t et = c.read<uint32_t>(field + " (array element type)");
  if (!valid_type(et)) f.fail(field, str_cat("array element type ", et, " is not a GGUF value type (0..12)"));
  const uint64_t n = c.read<uint64_t>(field + " (array length)");
  uint64_t min_bytes;
  if (mul_overflows(n, min_encoded_size(static_cast<GgufType>(et)), &min_bytes) || min_bytes > c.remaining())
    f.fail(field, str_cat("array of ", n, " elements cannot fit in the ", c.remaining(), " bytes left in the file"));
  return {static_cast<GgufType>(et), n};
}

// Checks n array elements of type t and moves past them, storing nothing.
void skip_elements(const GgufFile& f, Cursor& c, GgufType t, uint64_t n, const std::string& field, int depth) {
  if (const uint64_t size = fixed_size(t)) {
    const uint8_t* p = c.here();
    c.skip(n * size, field);  // n * size was checked against the bytes left
    if (t == GgufType::BOOL)
      for (uint64_t k = 0; k < n; ++k)
        if (p[k] > 1) f.fail(field, str_cat("bool must be 0 or 1, found ", int(p[k]), " (element ", k, ")"));
    return;
  }
  for (uint64_t k = 0; k < n; ++k) {
    if (t == GgufType::STRING) {
      c.skip_string(field);
    } else {
      const auto [et, count] = read_array_head(f, c, field, depth + 1);
      skip_elements(f, c, et, count, field, depth + 1);
    }
  }
}

void read_value(const GgufFile& f, Cursor& c, GgufType type, const std::string& field, int depth,
                GgufValue* out) {
  out->type = type;
  switch (type) {
    case GgufType::U8: out->u = c.read<uint8_t>(field); break;
    case GgufType::I8: out->i = c.read<int8_t>(field); break;
    case GgufType::U16: out->u = c.read<uint16_t>(field); break;
    case GgufType::I16: out->i = c.read<int16_t>(field); break;
    case GgufType::U32: out->u = c.read<uint32_t>(field); break;
    case GgufType::I32: out->i = c.read<int32_t>(field); break;
    case GgufType::U64: out->u = c.read<uint64_t>(field); break;
    case GgufType::I64: out->i = c.read<int64_t>(field); break;
    case GgufType::F32: out->f = c.read<float>(field); break;
    case GgufType::F64: out->f = c.read<double>(field); break;
    case GgufType::BOOL: {
      const uint8_t b = c.read<uint8_t>(field);
      if (b > 1) f.fail(field, str_cat("bool must be 0 or 1, found ", int(b)));
      out->u = b;
      break;
    }
    case GgufType::STRING: out->s = c.read_string(field); break;
    case GgufType::ARRAY: {
      // Validated element by element, then kept as one copy of its encoded bytes (GgufValue).
      const auto [et, n] = read_array_head(f, c, field, depth);
      const uint8_t* start = c.here();
      skip_elements(f, c, et, n, field, depth);
      out->elem_type = et;
      out->count = n;
      out->encoded = std::make_shared<const std::string>(reinterpret_cast<const char*>(start),
                                                         static_cast<size_t>(c.here() - start));
      out->begin = 0;
      out->end = out->encoded->size();
      break;
    }
  }
}

}  // namespace

GgufFile::GgufFile(const std::string& path) : TensorSource(path), file_(std::make_unique<MappedFile>(path)) {
  Cursor c(*this, file_->data(), file_->size());
  if (file_->size() < 4) fail("header", str_cat("file is ", file_->size(), " bytes; not a GGUF file"));
  const uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) {
    char got[5] = {};
    std::memcpy(got, &magic, 4);
    for (char& ch : got)
      if (ch && (ch < 32 || ch > 126)) ch = '?';
    fail("magic", str_cat("expected 'GGUF', found '", got,
                          "' (is this a GGUF file? safetensors/pickle folders are not GGUF)"));
  }
  version_ = c.read<uint32_t>("version");
  if (version_ == 1) fail("version", "GGUF v1 is obsolete; re-convert the model with a current llama.cpp");
  if (version_ != 2 && version_ != 3) fail("version", str_cat("expected 2 or 3, found ", version_));
  const uint64_t n_tensors = c.read<uint64_t>("tensor_count");
  const uint64_t n_kv = c.read<uint64_t>("metadata_kv_count");
  // Each key/value takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor info 8+4+8+4+8.
  uint64_t bound;
  if (mul_overflows(n_kv, 13, &bound) || bound > c.remaining())
    fail("metadata_kv_count", str_cat(n_kv, " entries cannot fit in a ", file_->size(), "-byte file"));
  if (mul_overflows(n_tensors, 32, &bound) || bound > c.remaining())
    fail("tensor_count", str_cat(n_tensors, " tensors cannot fit in a ", file_->size(), "-byte file"));

  for (uint64_t k = 0; k < n_kv; ++k) {
    const std::string where = str_cat("metadata entry ", k);
    std::string key = c.read_string(where + " key");
    const uint32_t t = c.read<uint32_t>(key + " (value type)");
    if (!valid_type(t)) fail(key, str_cat("value type ", t, " is not a GGUF value type (0..12)"));
    GgufValue v;
    read_value(*this, c, static_cast<GgufType>(t), key, 0, &v);
    add_value(std::move(key), std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (!a->is_integer() || a->type == GgufType::I8 || a->type == GgufType::I16 ||
        a->type == GgufType::I32 || a->type == GgufType::I64)
      fail("general.alignment", str_cat("expected an unsigned integer, found ", gguf_type_name(a->type)));
    if (a->u == 0 || (a->u & (a->u - 1)) != 0 || a->u > (1u << 20))
      fail("general.alignment", str_cat("expected a power of two (<= 1 MiB), found ", a->u));
    alignment_ = a->u;
  }

  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensor t;
    t.name = c.read_string(str_cat("tensor ", k, " name"));
    const std::string field = "tensor '" + t.name + "'";
    const uint32_t n_dims = c.read<uint32_t>(field + " n_dims");
    if (n_dims == 0 || n_dims > kMaxDims) fail(field, str_cat("n_dims must be 1..4, found ", n_dims));
    uint64_t n_elem = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim = c.read<uint64_t>(field + " shape");
      if (dim == 0 || dim > (uint64_t(1) << 40)) fail(field, str_cat("dimension ", d, " is ", dim));
      if (mul_overflows(n_elem, dim, &n_elem)) fail(field, "element count overflows");
      t.shape.push_back(dim);
    }
    const uint32_t type_id = c.read<uint32_t>(field + " type");
    const DTypeInfo* info = dtype_info(type_id);
    if (!info)  // a valid file may use a type newer than this build: unsupported, not malformed
      throw UnsupportedError(str_cat(this->path(), ": ", field, ": tensor type id ", type_id,
                                     " is not a ggml type wrenlm knows (supported: ", supported_dtypes(), ")"));
    t.dtype = static_cast<DType>(type_id);
    if (t.shape[0] % info->block_size != 0)
      fail(field, str_cat("row length ", t.shape[0], " is not a multiple of the ", info->name,
                          " block size ", info->block_size));
    if (mul_overflows(n_elem / info->block_size, info->type_size, &t.nbytes))
      fail(field, "byte size overflows");
    t.offset = c.read<uint64_t>(field + " offset");
    if (t.offset % alignment_ != 0)
      fail(field, str_cat("data offset ", t.offset, " is not a multiple of the alignment ", alignment_));
    add_tensor(std::move(t));
  }

  // The data section starts at the next multiple of the alignment.
  const uint64_t header_end = c.pos();
  const uint64_t data_start = (header_end + alignment_ - 1) / alignment_ * alignment_;
  if (n_tensors > 0 && data_start > file_->size())
    fail("data section", str_cat("starts at ", data_start, " past the end of the ", file_->size(), "-byte file"));
  const uint64_t data_size = n_tensors > 0 ? file_->size() - data_start : 0;
  for (GgufTensor& t : mutable_tensors()) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      fail("tensor '" + t.name + "'", str_cat("data [", t.offset, ", +", t.nbytes, ") runs past the end of the ",
                                              data_size, "-byte data section (truncated file?)"));
    t.data = file_->data() + data_start + t.offset;
  }
  check_tensor_layout();
}

void GgufFile::check_tensor_layout() const {
  // Writers (llama.cpp, gguf-py) lay tensors out back to back, each padded to the alignment. A
  // tensor that overlaps another, or leaves bytes that belong to no tensor, has a wrong offset or a
  // wrong type (a type id swapped for one of another block size changes its byte size): either
  // way its bytes are not what its type says, and it would load and compute garbage.
  std::vector<const GgufTensor*> by_offset;
  for (const GgufTensor& t : tensors()) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensor* a, const GgufTensor* b) { return a->offset < b->offset; });
  uint64_t end = 0;  // where the previous tensor's bytes end
  const GgufTensor* prev = nullptr;
  for (const GgufTensor* t : by_offset) {
    const std::string field = "tensor '" + t->name + "'";
    if (t->offset < end)
      fail(field, str_cat("data [", t->offset, ", +", t->nbytes, ") overlaps tensor '", prev->name, "' [",
                          prev->offset, ", +", prev->nbytes, ") (", dtype_name(prev->dtype), " ", prev->shape_str(),
                          "): a wrong offset, or a wrong type for one of them"));
    const uint64_t padded = (end + alignment_ - 1) / alignment_ * alignment_;
    if (t->offset > padded)
      fail(field, str_cat("data starts at ", t->offset, " but ", prev ? "tensor '" + prev->name + "'" : "the data section",
                          prev ? str_cat(" (", dtype_name(prev->dtype), " ", prev->shape_str(), ")") : "",
                          " ends at ", end, ": ", t->offset - end,
                          " bytes belong to no tensor (a wrong type or offset)"));
    end = t->offset + t->nbytes;
    prev = t;
  }
}

}  // namespace wren
