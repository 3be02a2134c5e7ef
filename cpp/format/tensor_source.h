// A model file's contents as the runtime sees them: metadata in GGUF's key/value model and a table of
// named tensors whose bytes stay where the format put them. GGUF files are one source; Hugging Face
// folders (config.json + safetensors) are another, translated to the same keys and tensor names, so
// architectures and tokenizers read every format through this one interface.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace wren {

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);

struct LoraUpdate;  // format/lora_adapter.h

// One metadata value. Scalars keep their value in the widest matching field.
//
// Arrays are kept compact: their elements stay encoded as GGUF encodes them (numbers little-endian
// and packed, strings as a u64 length and the bytes, nested arrays as element type, count and
// elements), one shared buffer per array, decoded on access. An array costs the RAM its bytes take
// in the file, not a GgufValue per element (~100 bytes for each byte of a u8 array).
struct GgufValue {
  GgufType type = GgufType::U8;
  uint64_t u = 0;   // unsigned integers, bool
  int64_t i = 0;    // signed integers
  double f = 0.0;   // floats
  std::string s;    // STRING

  // ARRAY: `count` elements of elem_type, encoded back to back in `encoded` from byte `begin`.
  GgufType elem_type = GgufType::U8;
  uint64_t count = 0;
  std::shared_ptr<const std::string> encoded;
  size_t begin = 0, end = 0;  // [begin, end) of *encoded

  bool is_integer() const;
  bool is_signed() const;  // I8..I64
  bool is_float() const { return type == GgufType::F32 || type == GgufType::F64; }
  size_t size() const { return static_cast<size_t>(count); }  // ARRAY: number of elements

  // ARRAY: calls fn(k, element) for each element in order (one decoded element at a time).
  void for_each(const std::function<void(size_t, const GgufValue&)>& fn) const;
  // ARRAY: all elements decoded (for small arrays; large ones: for_each).
  std::vector<GgufValue> elements() const;
  // Appends v's little-endian GGUF encoding, without its type tag, to out (what a GGUF file holds
  // after the tag; an ARRAY: element type, count, elements).
  void encode(std::string* out) const;
  // An ARRAY of elem_type holding the given scalars (or arrays, for ARRAY): encodes them.
  static GgufValue array_of(GgufType elem_type, const std::vector<GgufValue>& elems);
};

struct GgufTensor {
  std::string name;
  DType dtype;
  std::vector<uint64_t> shape;  // shape[0] is the contiguous (row) dimension, as in ggml
  uint64_t offset = 0;          // from the start of the data section
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;  // inside the mapping

  uint64_t n_elements() const;
  uint64_t dim(size_t k) const { return k < shape.size() ? shape[k] : 1; }
  std::string shape_str() const;
};

class TensorSource {
 public:
  virtual ~TensorSource() = default;

  const std::string& path() const { return path_; }
  // Bytes on disk (all files of the model).
  virtual uint64_t file_size() const = 0;
  // Drops the resident pages of bytes [p, p + n) of a tensor's data once they were copied (see
  // MappedFile::release: only whole pages inside the range go, so neighbours are never touched).
  virtual void release(const uint8_t* p, uint64_t n) const {}
  // FormatError when a file the tensors are mapped from has been truncated since it was opened.
  // Weights stay in the mapping (they are not copied at load), and a page past the new end of a
  // file faults (SIGBUS) when touched; the runtime calls this before every forward pass instead.
  // A file truncated while a pass runs can still fault: mapping a file means trusting it not to
  // shrink, as every mmap-based runtime does (llama.cpp included).
  virtual void check_not_truncated() const {}
  // The LoRA updates an adapter layer (format/lora_source.h) adds to tensor `name`, in the order the
  // adapters were given, for the weight binder to apply at run time; none for a plain file.
  virtual std::vector<const LoraUpdate*> lora_updates(const std::string& name) const { return {}; }

  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  // Metadata keys in file order (for faithful listing).
  const std::vector<std::string>& keys() const { return key_order_; }

  bool has(const std::string& key) const { return kv_.count(key) != 0; }
  const GgufValue* find(const std::string& key) const;
  const GgufTensor* find_tensor(const std::string& name) const;

  // Typed getters: the key must exist (or the default is returned) and have a compatible type;
  // otherwise FormatError naming the file and key.
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& def) const;
  uint64_t get_uint(const std::string& key) const;
  uint64_t get_uint(const std::string& key, uint64_t def) const;
  double get_float(const std::string& key) const;
  double get_float(const std::string& key, double def) const;
  bool get_bool(const std::string& key, bool def) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;

  [[noreturn]] void fail(const std::string& field, const std::string& what) const;

 protected:
  explicit TensorSource(std::string path) : path_(std::move(path)) {}
  // Adds a metadata entry / tensor; FormatError on a duplicate.
  void add_value(std::string key, GgufValue v);
  void add_tensor(GgufTensor t);
  std::vector<GgufTensor>& mutable_tensors() { return tensors_; }

 private:
  std::string path_;
  std::map<std::string, GgufValue> kv_;
  std::vector<std::string> key_order_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// Opens a model file by what it is: a GGUF file (format/gguf.h) or a Hugging Face model folder.
// FormatError for anything unreadable, naming the path and what was expected.
std::unique_ptr<TensorSource> open_model_source(const std::string& path);

}  // namespace wren
