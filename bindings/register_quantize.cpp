// Quantization: the model converter (run with the GIL released, Ctrl-C checked between slabs), its
// mix table and per-tensor plan (for dry runs and tests), and one-row quantization (for tests).
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/register.h"
#include "convert/quant_mix.h"
#include "convert/quantize_model.h"
#include "format/tensor_source.h"
#include "tensor/dtype.h"
#include "tensor/quantize.h"
#include "util/errors.h"

namespace py = pybind11;

namespace wren::py_bind {

void register_quantize(py::module_& m) {
  m.def("quantize_model", [](const std::string& src, const std::string& dst, const std::string& type, int n_threads,
                             const std::vector<std::pair<std::string, float>>& lora, py::object callback) {
        const QuantizeCallback cb = [&callback](const QuantizeProgress& p) {
          py::gil_scoped_acquire gil;
          if (PyErr_CheckSignals() != 0) {
            PyErr_Clear();
            throw Interrupted();
          }
          if (!callback.is_none())
            callback(p.tensor, p.n_tensors, p.name, dtype_name(p.from), dtype_name(p.to), p.bytes_read, p.bytes_total,
                     p.bytes_written);
        };
        QuantizeOptions o;
        o.mix = type;
        o.n_threads = n_threads;
        for (const auto& [path, scale] : lora) o.loras.push_back({path, scale});
        py::gil_scoped_release nogil;
        return quantize_model(src, dst, o, cb);
      }, py::arg("src"), py::arg("dst"), py::kw_only(), py::arg("type"), py::arg("n_threads") = 0,
      py::arg("lora") = std::vector<std::pair<std::string, float>>(), py::arg("callback") = py::none(),
      "Quantizes src (GGUF file or HF folder) into the GGUF file dst, merging the LoRA adapters\n"
      "[(path, scale)] given; returns its size in bytes.\n"
      "callback(tensor, n_tensors, name, from_type, to_type, bytes_read, bytes_total, bytes_written) runs at\n"
      "the start of each tensor and after each slab.");

  m.def("quant_mixes", [] {
    py::list out;
    for (const QuantMix& q : quant_mixes()) out.append(py::make_tuple(q.name, q.file_type, dtype_name(q.base), q.about));
    return out;
  }, "List of (name, llama_ftype, main tensor type, description).");

  m.def("plan_quant_mix", [](const std::string& src, const std::string& type) {
    const QuantMix& mix = find_quant_mix(type);
    std::unique_ptr<TensorSource> s;
    {
      py::gil_scoped_release nogil;
      s = open_model_source(src);
    }
    py::list out;
    for (const TensorPlan& p : plan_quant_mix(*s, mix)) {
      const GgufTensor& t = s->tensors()[p.index];
      out.append(py::make_tuple(t.name, dtype_name(t.dtype), dtype_name(p.to), t.shape));
    }
    return out;
  }, py::arg("src"), py::arg("type"), "List of (name, source type, output type, shape), in output order.");

  m.def("quantize_row", [](uint32_t type_id, py::array_t<float, py::array::c_style | py::array::forcecast> x) {
    const DTypeInfo* info = dtype_info(type_id);
    WREN_CHECK(info, InvalidArgument, "unknown tensor type id ", type_id);
    const DType t = static_cast<DType>(type_id);
    const size_t n = static_cast<size_t>(x.size());
    WREN_CHECK(n % info->block_size == 0, InvalidArgument, n, " values is not a multiple of the ", info->name,
               " block size ", info->block_size);
    std::string out(row_bytes(t, n), '\0');
    {
      py::gil_scoped_release nogil;
      quantize_row(t, x.data(), out.data(), n);
    }
    return py::bytes(out);
  }, py::arg("type_id"), py::arg("x"), "Quantizes floats (any shape, taken flat) to the blocks of a ggml type id.");
}

}  // namespace wren::py_bind
