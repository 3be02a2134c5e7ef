// safetensors reader: an 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and [begin, end) byte range in the data section that follows, then the data. The file
// is memory-mapped and tensors stay in the mapping. Every length, shape and offset is checked.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tensor/dtype.h"
#include "util/mmap_file.h"

namespace wren {

struct SafetensorsTensor {
  std::string name;
  std::string dtype_name;        // as written ("F32", "BF16", "I64", ...)
  bool supported = false;        // F32 / F16 / BF16: the weight types we load
  DType dtype = DType::F32;      // valid when supported
  std::vector<uint64_t> shape;   // as written: row-major, the last dimension is contiguous
  const uint8_t* data = nullptr; // inside the mapping
  uint64_t nbytes = 0;

  uint64_t n_elements() const;
};

class SafetensorsFile {
 public:
  // FormatError (file + field) on anything malformed.
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return file_->path(); }
  uint64_t file_size() const { return file_->size(); }
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(const std::string& name) const;
  // The tensor, or UnsupportedError naming it when its dtype is not one we load.
  const SafetensorsTensor& require_supported(const SafetensorsTensor& t) const;
  bool contains(const uint8_t* p) const { return p >= file_->data() && p < file_->data() + file_->size(); }
  void release(const uint8_t* p, uint64_t n) const { file_->release(p, static_cast<size_t>(n)); }
  void check_not_truncated() const { file_->check_not_truncated(); }

 private:
  [[noreturn]] void fail(const std::string& field, const std::string& what) const;
  std::unique_ptr<MappedFile> file_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t> index_;
};

}  // namespace wren
