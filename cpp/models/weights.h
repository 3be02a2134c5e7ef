// Binding tensors from a GGUF file to typed views, checking names, shapes and types.
#pragma once

#include <string>
#include <vector>

#include "format/gguf.h"
#include "kernels/matmul.h"

namespace wren {

class WeightBinder {
 public:
  explicit WeightBinder(const GgufFile& f) : f_(f) {}
  bool has(const std::string& name) const { return f_.find_tensor(name) != nullptr; }
  // A 2-D weight (rows x cols); FormatError if missing or misshapen, UnsupportedError if its type is.
  QuantMatrix matrix(const std::string& name, int64_t rows, int64_t cols) const;
  // A 1-D float vector of length n (F32/F16/BF16 are converted once; they are tiny).
  std::vector<float> vector(const std::string& name, int64_t n) const;

 private:
  const GgufTensor& get(const std::string& name) const;
  const GgufFile& f_;
};

}  // namespace wren
