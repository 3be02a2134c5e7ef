#include "models/weights.h"

#include "tensor/quant.h"
#include "util/errors.h"

namespace wren {

const GgufTensor& WeightBinder::get(const std::string& name) const {
  const GgufTensor* t = f_.find_tensor(name);
  if (!t) f_.fail("tensor '" + name + "'", "required tensor is missing");
  if (!dtype_info(t->dtype).supported)
    throw UnsupportedError(str_cat(f_.path(), ": tensor '", name, "' has type ", dtype_name(t->dtype),
                                   ", which wrenlm does not support (supported: ", supported_dtypes(), ")"));
  return *t;
}

QuantMatrix WeightBinder::matrix(const std::string& name, int64_t rows, int64_t cols) const {
  const GgufTensor& t = get(name);
  if (t.shape.size() != 2 || t.shape[0] != static_cast<uint64_t>(cols) || t.shape[1] != static_cast<uint64_t>(rows))
    f_.fail("tensor '" + name + "'", str_cat("expected shape [", cols, ", ", rows, "], found ", t.shape_str()));
  QuantMatrix m;
  m.dtype = t.dtype;
  m.rows = rows;
  m.cols = cols;
  m.data = t.data;
  m.row_stride = row_bytes(t.dtype, static_cast<size_t>(cols));
  return m;
}

std::vector<float> WeightBinder::vector(const std::string& name, int64_t n) const {
  const GgufTensor& t = get(name);
  if (t.n_elements() != static_cast<uint64_t>(n))
    f_.fail("tensor '" + name + "'", str_cat("expected ", n, " elements, found ", t.shape_str()));
  std::vector<float> v(static_cast<size_t>(n));
  dequantize_row(t.dtype, t.data, v.data(), static_cast<size_t>(n));
  return v;
}

}  // namespace wren
