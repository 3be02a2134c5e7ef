// One register_*() per bound concept, all called from module.cpp's PYBIND11_MODULE.
#pragma once

#include <pybind11/pybind11.h>

namespace wren::py_bind {

void register_errors(pybind11::module_& m);
void register_gguf(pybind11::module_& m);
void register_kernels(pybind11::module_& m);
void register_tokenizer(pybind11::module_& m);
void register_model(pybind11::module_& m);
void register_sampling(pybind11::module_& m);
void register_attention(pybind11::module_& m);
void register_quantize(pybind11::module_& m);

// Raises KeyboardInterrupt-mapped Interrupted when Python has a pending signal (Ctrl-C).
// Call with the GIL released; it briefly takes it.
bool python_interrupt_pending();

}  // namespace wren::py_bind
