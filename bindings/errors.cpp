// Maps the C++ exception types of util/errors.h to Python exceptions.
#include <pybind11/pybind11.h>

#include <cstring>

#include "bindings/register.h"
#include "util/errors.h"

namespace py = pybind11;

namespace wren::py_bind {

namespace {

// Messages quote names from files, which may hold invalid UTF-8: never let that mask the error.
void set(const py::handle& type, const char* what) {
  py::str msg = py::reinterpret_steal<py::str>(
      PyUnicode_DecodeUTF8(what, static_cast<Py_ssize_t>(std::strlen(what)), "replace"));
  py::set_error(type, msg);
}

}  // namespace

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
      set(PyExc_ValueError, e.what());
    } catch (const FormatError& e) {
      set(format, e.what());
    } catch (const UnsupportedError& e) {
      set(unsupported, e.what());
    } catch (const ContextOverflowError& e) {
      set(overflow, e.what());
    } catch (const WrenError& e) {
      set(base, e.what());
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
