// Sampler stages exposed for unit tests on small distributions.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/register.h"
#include "sampling/sampler.h"
#include "util/errors.h"

namespace py = pybind11;

namespace wren::py_bind {

void register_sampling(py::module_& m) {
  py::module_ s = m.def_submodule("sampling", "Sampler stages, for tests");
  s.def("apply", [](const std::string& stage, double param, std::vector<float> logits,
                    std::vector<int32_t> history) {
    std::unique_ptr<Sampler> st;
    if (stage == "top_k") st = make_top_k(static_cast<int32_t>(param));
    else if (stage == "top_p") st = make_top_p(static_cast<float>(param));
    else if (stage == "min_p") st = make_min_p(static_cast<float>(param));
    else if (stage == "temperature") st = make_temperature(static_cast<float>(param));
    else if (stage == "repetition_penalty") st = make_repetition_penalty(static_cast<float>(param), 64);
    else if (stage == "greedy") st = make_greedy();
    else if (stage == "dist") st = make_dist(static_cast<uint64_t>(param));
    else throw InvalidArgument("unknown stage " + stage);
    for (int32_t t : history) st->accept(t);
    Candidates c;
    c.reset(logits.data(), static_cast<int64_t>(logits.size()));
    st->apply(c);
    std::vector<int32_t> ids;
    std::vector<float> out;
    for (size_t i = 0; i < c.size; ++i) {
      ids.push_back(c.items[i].id);
      out.push_back(c.items[i].logit);
    }
    return py::make_tuple(ids, out, c.selected);
  }, py::arg("stage"), py::arg("param"), py::arg("logits"), py::arg("history") = std::vector<int32_t>{},
     "Applies one stage to logits; returns (surviving ids, their logits, selected id or -1).");
}

}  // namespace wren::py_bind
