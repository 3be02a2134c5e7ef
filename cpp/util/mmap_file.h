// Read-only memory map of a whole file. Tensors are used in place from the mapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace wren {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws FormatError if it cannot be opened
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops this process's pages of [p, p + n) (whole pages inside it): they stop counting in RSS
  // and are read back from the file on the next touch. For data copied elsewhere at load time.
  void release(const uint8_t* p, size_t n) const;
  // FormatError when the file on disk is now shorter than the mapping: touching the missing pages
  // would kill the process with SIGBUS. One fstat(); called before each forward pass.
  void check_not_truncated() const;

 private:
  std::string path_;
  int fd_ = -1;  // kept open for check_not_truncated
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace wren
