// Maps the C++ exception types of util/errors.h to Python exceptions.
#include <pybind11/pybind11.h>

#include "bindings/register.h"
#include "util/errors.h"

namespace py = pybind11;

namespace wren::py_bind {

void register_errors(py::module_& m) {
  static py::exception<WrenError> base(m, "WrenError");
  static py::exception<FormatError> format(m, "FormatError", base.ptr());
  static py::exception<UnsupportedError> unsupported(m, "UnsupportedError", base.ptr());
  static py::exception<ContextOverflowError> overflow(m, "ContextOverflowError", base.ptr());
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Interrupted&) {
      PyErr_SetNone(PyExc_KeyboardInterrupt);
    } catch (const InvalidArgument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const FormatError& e) {
      format(e.what());
    } catch (const UnsupportedError& e) {
      unsupported(e.what());
    } catch (const ContextOverflowError& e) {
      overflow(e.what());
    } catch (const WrenError& e) {
      base(e.what());
    }
  });
}

bool python_interrupt_pending() {
  py::gil_scoped_acquire gil;
  if (PyErr_CheckSignals() != 0) {
    // A KeyboardInterrupt (or another signal handler's exception) is now set; drop it here and
    // let the caller unwind with Interrupted, which maps back to KeyboardInterrupt.
    PyErr_Clear();
    return true;
  }
  return false;
}

}  // namespace wren::py_bind
