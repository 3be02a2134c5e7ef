// GgufFile: metadata and tensor table as Python objects (for inspection and tests).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/register.h"
#include "format/gguf.h"
#include "format/safetensors.h"

namespace py = pybind11;

namespace wren::py_bind {
namespace {

py::object to_python(const GgufValue& v) {
  switch (v.type) {
    case GgufType::U8: case GgufType::U16: case GgufType::U32: case GgufType::U64: return py::int_(v.u);
    case GgufType::I8: case GgufType::I16: case GgufType::I32: case GgufType::I64: return py::int_(v.i);
    case GgufType::F32: case GgufType::F64: return py::float_(v.f);
    case GgufType::BOOL: return py::bool_(v.u != 0);
    case GgufType::STRING: return py::str(PyUnicode_DecodeUTF8(v.s.data(), static_cast<Py_ssize_t>(v.s.size()), "replace"), false);
    case GgufType::ARRAY: {
      py::list out(v.size());
      v.for_each([&](size_t i, const GgufValue& e) { out[i] = to_python(e); });
      return std::move(out);
    }
  }
  return py::none();
}

py::str utf8(const std::string& s) {
  return py::reinterpret_steal<py::str>(PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace"));
}

}  // namespace

void register_gguf(py::module_& m) {
  py::class_<GgufFile>(m, "GgufFile", "A GGUF file, memory-mapped and validated.")
      .def(py::init<const std::string&>(), py::arg("path"), py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("path", &GgufFile::path)
      .def_property_readonly("version", &GgufFile::version)
      .def_property_readonly("alignment", &GgufFile::alignment)
      .def_property_readonly("metadata", [](const GgufFile& f) {
        py::dict d;
        for (const std::string& k : f.keys()) {
          GgufValue key;
          key.type = GgufType::STRING;
          key.s = k;
          d[to_python(key)] = to_python(*f.find(k));
        }
        return d;
      })
      .def_property_readonly("tensors", [](const GgufFile& f) {
        py::list out;
        for (const GgufTensor& t : f.tensors())
          out.append(py::make_tuple(py::reinterpret_steal<py::str>(PyUnicode_DecodeUTF8(
                                        t.name.data(), static_cast<Py_ssize_t>(t.name.size()), "replace")),
                                    dtype_name(t.dtype), t.shape, t.offset, t.nbytes));
        return out;
      }, "List of (name, type name, shape with the row dimension first, data offset, byte size).")
      .def("tensor_bytes", [](const GgufFile& f, const std::string& name) {
        const GgufTensor* t = f.find_tensor(name);
        if (!t) throw py::key_error(name);
        return py::bytes(reinterpret_cast<const char*>(t->data), t->nbytes);
      }, py::arg("name"));

  // Any model source (a GGUF file or a Hugging Face folder) as the runtime sees it.
  py::class_<TensorSource>(m, "TensorSource", "A model as metadata keys and a tensor table (GGUF names).")
      .def_property_readonly("path", &TensorSource::path)
      .def_property_readonly("metadata", [](const TensorSource& f) {
        py::dict d;
        for (const std::string& k : f.keys()) d[utf8(k)] = to_python(*f.find(k));
        return d;
      })
      .def_property_readonly("tensors", [](const TensorSource& f) {
        py::list out;
        for (const GgufTensor& t : f.tensors()) out.append(py::make_tuple(utf8(t.name), dtype_name(t.dtype), t.shape));
        return out;
      }, "List of (name, type name, shape with the row dimension first).")
      .def("tensor_bytes", [](const TensorSource& f, const std::string& name) {
        const GgufTensor* t = f.find_tensor(name);
        if (!t) throw py::key_error(name);
        return py::bytes(reinterpret_cast<const char*>(t->data), t->nbytes);
      }, py::arg("name"));
  m.def("open_source", [](const std::string& path) { return open_model_source(path); }, py::arg("path"),
        py::call_guard<py::gil_scoped_release>(), "Opens a .gguf file or a Hugging Face model folder.");

  py::class_<SafetensorsFile>(m, "SafetensorsFile", "A safetensors file, memory-mapped and validated.")
      .def(py::init<const std::string&>(), py::arg("path"), py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("tensors", [](const SafetensorsFile& f) {
        py::list out;
        for (const SafetensorsTensor& t : f.tensors()) out.append(py::make_tuple(utf8(t.name), t.dtype_name, t.shape));
        return out;
      }, "List of (name, dtype as written, shape as written).")
      .def("tensor_bytes", [](const SafetensorsFile& f, const std::string& name) {
        const SafetensorsTensor* t = f.find(name);
        if (!t) throw py::key_error(name);
        f.require_supported(*t);
        return py::bytes(reinterpret_cast<const char*>(t->data), t->nbytes);
      }, py::arg("name"), "The tensor's bytes (UnsupportedError unless F32/F16/BF16).");
}

}  // namespace wren::py_bind
