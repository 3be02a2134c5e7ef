// Streaming GGUF (version 3) writer. The header (metadata, then the tensor table with every offset)
// is written first, so the table must be complete before any tensor data; each tensor's bytes then
// follow in table order, written in as many pieces as the caller likes, each tensor padded to the
// alignment. Nothing is held in memory but the header.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "format/tensor_source.h"
#include "tensor/dtype.h"

namespace wren {

class GgufWriter {
 public:
  // alignment: a power of two (the general.alignment the metadata declares, 32 by default).
  GgufWriter(std::string path, uint64_t alignment);
  ~GgufWriter();  // closes the file if still open (the caller removes a partial file)
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Adds a key, or replaces the value of one already added (keeping its place).
  void set_value(const std::string& key, GgufValue v);
  void remove_value(const std::string& key);
  // Adds a tensor to the table; shape[0] is the row length (ggml order).
  void add_tensor(const std::string& name, DType type, const std::vector<uint64_t>& shape);

  // Creates the file and writes the header. After this, only tensor data.
  void write_header();
  // Appends n bytes of the current tensor (the first one not yet complete).
  void write_data(const void* p, size_t n);
  // Checks every tensor got exactly its bytes, flushes and closes. Throws on any I/O error.
  void finish();

  uint64_t bytes_written() const { return written_; }

 private:
  struct Entry {
    std::string name;
    DType type;
    std::vector<uint64_t> shape;
    uint64_t offset;  // in the data section
    uint64_t nbytes;
  };
  void put(const void* p, size_t n);
  void pad();

  std::string path_;
  uint64_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Entry> tensors_;
  uint64_t data_size_ = 0;
  std::FILE* f_ = nullptr;
  size_t current_ = 0;        // tensor being written
  uint64_t current_done_ = 0;  // its bytes so far
  uint64_t written_ = 0;
};

}  // namespace wren
