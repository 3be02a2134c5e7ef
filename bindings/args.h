// Arguments from Python checked against their native C++ type: a value that does not fit is a
// ValueError (InvalidArgument) naming the parameter, never a failed overload (TypeError) and never
// undefined behaviour. Bindings whose integers or strings come straight from users take py::handle
// and convert through these, so the check is the same for every surface (API, CLI, server).
#pragma once

#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "util/errors.h"

namespace wren::py_bind {

// A Python int (not bool, not float) that fits T.
template <typename T>
T native_int(pybind11::handle v, const char* name) {
  static_assert(std::is_integral<T>::value, "integers only");
  if (PyBool_Check(v.ptr()) || !PyIndex_Check(v.ptr()))
    throw InvalidArgument(str_cat(name, " must be an integer, got ", Py_TYPE(v.ptr())->tp_name));
  pybind11::int_ i = pybind11::reinterpret_steal<pybind11::int_>(PyNumber_Index(v.ptr()));
  if (!i) throw pybind11::error_already_set();
  int overflow = 0;
  bool fits;
  T out{};
  if (std::is_signed<T>::value) {
    const long long x = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
    fits = overflow == 0 && !(x == -1 && PyErr_Occurred()) && x >= static_cast<long long>(std::numeric_limits<T>::min()) &&
           x <= static_cast<long long>(std::numeric_limits<T>::max());
    out = static_cast<T>(x);
  } else {
    const bool negative = PyObject_RichCompareBool(i.ptr(), pybind11::int_(0).ptr(), Py_LT) == 1;
    const unsigned long long x = negative ? 0 : PyLong_AsUnsignedLongLong(i.ptr());
    fits = !negative && !(x == static_cast<unsigned long long>(-1) && PyErr_Occurred()) &&
           x <= static_cast<unsigned long long>(std::numeric_limits<T>::max());
    out = static_cast<T>(x);
  }
  if (!fits) {
    PyErr_Clear();
    throw InvalidArgument(str_cat(name, " must be in [", +std::numeric_limits<T>::min(), ", ",
                                  +std::numeric_limits<T>::max(), "], got ",
                                  std::string(pybind11::str(i)).substr(0, 40)));
  }
  return out;
}

// A Python number as a double (ints included).
inline double native_float(pybind11::handle v, const char* name) {
  if (PyBool_Check(v.ptr()) || !(PyFloat_Check(v.ptr()) || PyIndex_Check(v.ptr())))
    throw InvalidArgument(str_cat(name, " must be a number, got ", Py_TYPE(v.ptr())->tp_name));
  const double d = PyFloat_AsDouble(v.ptr());
  if (d == -1.0 && PyErr_Occurred()) {  // an int too large for a double
    PyErr_Clear();
    throw InvalidArgument(str_cat(name, " is too large"));
  }
  return d;
}

// A Python number as a float32: a finite value beyond float32's range is an error (converting it
// would be undefined behaviour); inf and NaN pass through for the option checks to name.
inline float native_float32(pybind11::handle v, const char* name) {
  const double d = native_float(v, name);
  if (std::isfinite(d) && std::fabs(d) > static_cast<double>(std::numeric_limits<float>::max()))
    throw InvalidArgument(str_cat(name, " = ", d, " is outside the float32 range"));
  return static_cast<float>(d);
}

// A str as UTF-8; a lone surrogate (not encodable) is a ValueError naming its position.
inline std::string native_str(pybind11::handle v, const char* name) {
  if (!PyUnicode_Check(v.ptr())) throw InvalidArgument(str_cat(name, " must be a str, got ", Py_TYPE(v.ptr())->tp_name));
  Py_ssize_t n = 0;
  const char* p = PyUnicode_AsUTF8AndSize(v.ptr(), &n);
  if (!p) {
    PyErr_Clear();
    const Py_ssize_t len = PyUnicode_GetLength(v.ptr());
    Py_ssize_t at = 0;
    for (; at < len; ++at) {
      const Py_UCS4 c = PyUnicode_ReadChar(v.ptr(), at);
      if (c >= 0xD800 && c <= 0xDFFF) break;
    }
    throw InvalidArgument(str_cat(name, " is not valid Unicode text: a lone surrogate at index ", at,
                                  " cannot be encoded as UTF-8"));
  }
  return std::string(p, static_cast<size_t>(n));
}

// A sequence of ints, each fitting T.
template <typename T>
std::vector<T> native_int_list(pybind11::handle v, const char* name) {
  if (PyUnicode_Check(v.ptr()) || PyBytes_Check(v.ptr()) || !PySequence_Check(v.ptr()))
    throw InvalidArgument(str_cat(name, " must be a sequence of integers, got ", Py_TYPE(v.ptr())->tp_name));
  pybind11::sequence seq = pybind11::reinterpret_borrow<pybind11::sequence>(v);
  std::vector<T> out;
  out.reserve(seq.size());
  for (pybind11::handle e : seq) out.push_back(native_int<T>(e, name));
  return out;
}

}  // namespace wren::py_bind
