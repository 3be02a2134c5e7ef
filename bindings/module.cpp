#include "bindings/register.h"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "wrenlm native core (thin bindings; the Python API lives in the wrenlm package)";
  wren::py_bind::register_errors(m);
  wren::py_bind::register_gguf(m);
  wren::py_bind::register_kernels(m);
  wren::py_bind::register_tokenizer(m);
  wren::py_bind::register_model(m);
  wren::py_bind::register_sampling(m);
  wren::py_bind::register_attention(m);
  wren::py_bind::register_quantize(m);
}
