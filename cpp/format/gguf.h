// GGUF reader (versions 2 and 3). The file is memory-mapped; tensor data stays in the mapping.
// Every count, length, offset and dimension is checked against the file before it is used.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "format/tensor_source.h"
#include "util/mmap_file.h"

namespace wren {

class GgufFile : public TensorSource {
 public:
  // Throws FormatError (file + field) on anything malformed.
  explicit GgufFile(const std::string& path);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t file_size() const override { return file_->size(); }
  void release(const uint8_t* p, uint64_t n) const override { file_->release(p, static_cast<size_t>(n)); }
  void check_not_truncated() const override { file_->check_not_truncated(); }

 private:
  // FormatError unless the tensors' bytes tile the data section: no overlaps, no unclaimed gaps.
  void check_tensor_layout() const;

  std::unique_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
};

}  // namespace wren
