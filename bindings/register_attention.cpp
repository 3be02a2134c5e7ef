// Attention over a KV cache (causal or not, sliding window, soft-capping, ALiBi), exposed for tests:
// the decode and prefill paths of cpp/attention/ against a numpy reference, for both cache types.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "bindings/register.h"
#include "attention/attention.h"
#include "attention/kv_cache.h"
#include "util/errors.h"

namespace py = pybind11;

namespace wren::py_bind {

void register_attention(py::module_& m) {
  using Floats = py::array_t<float, py::array::c_style | py::array::forcecast>;
  py::module_ a = m.def_submodule("attention", "Attention over a KV cache (for tests)");
  a.def("attend", [](Floats q, Floats k, Floats v, int64_t pos0, int64_t n_heads, int64_t n_kv_heads,
                     const std::string& kv_cache, int n_threads, bool causal, int64_t window, float scale,
                     float softcap, std::optional<Floats> alibi, int64_t page_rows) {
    WREN_CHECK(q.ndim() == 2 && k.ndim() == 2 && v.ndim() == 2, InvalidArgument, "q, k, v must be 2-D");
    WREN_CHECK(n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0 && q.shape(1) % n_heads == 0,
               InvalidArgument, "bad head counts");
    WREN_CHECK(n_threads >= 1 && n_threads <= 64, InvalidArgument, "n_threads must be in 1..64");
    AttentionShape s;
    s.n_heads = n_heads;
    s.n_kv_heads = n_kv_heads;
    s.head_dim = q.shape(1) / n_heads;
    const int64_t n = q.shape(0), n_keys = pos0 + n;
    WREN_CHECK(n > 0 && pos0 >= 0 && k.shape(0) == n_keys && v.shape(0) == n_keys && k.shape(1) == s.kv_dim() &&
                   v.shape(1) == s.kv_dim(), InvalidArgument, "k and v must be (pos0 + n, n_kv_heads * head_dim)");
    WREN_CHECK(window >= 0 && softcap >= 0.f, InvalidArgument, "window and softcap must be >= 0");
    WREN_CHECK(page_rows >= 1 && page_rows <= 4096, InvalidArgument, "page_rows must be in 1..4096");
    WREN_CHECK(!alibi || (alibi->ndim() == 1 && alibi->shape(0) == n_heads), InvalidArgument,
               "alibi must hold n_heads slopes");
    AttentionMask mask;
    mask.causal = causal;
    mask.window = window;
    mask.scale = scale;
    mask.softcap = softcap;
    mask.alibi = alibi ? alibi->data() : nullptr;
    Floats out({n, s.q_dim()});
    {
      py::gil_scoped_release nogil;
      KvLayout layout;
      layout.n_layers = 1;
      layout.kv_dim = s.kv_dim();
      layout.head_dim = s.head_dim;
      layout.dtype = parse_kv_dtype(kv_cache);
      layout.page_rows = page_rows;
      KvSequence cache(KvPagePool::create(layout), n_keys);
      cache.store(0, 0, n_keys, k.data(), v.data());
      cache.advance(n_keys);
      ThreadPool pool(n_threads);
      AttentionScratch scratch(s, n_threads);
      attention(q.data(), cache.view(0, n_keys), {pos0, n}, s, mask, out.mutable_data(), scratch, pool);
    }
    return out;
  }, py::arg("q"), py::arg("k"), py::arg("v"), py::kw_only(), py::arg("pos0"), py::arg("n_heads"),
     py::arg("n_kv_heads"), py::arg("kv_cache"), py::arg("n_threads"), py::arg("causal") = true,
     py::arg("window") = 0, py::arg("scale") = 0.f, py::arg("softcap") = 0.f, py::arg("alibi") = py::none(),
     py::arg("page_rows") = kKvPageRows,
     "Attention output (n, q_dim) of queries q (n, q_dim) at positions pos0.. over keys and values\n"
     "(pos0 + n, kv_dim), stored in a one-layer cache of type kv_cache ('f16' | 'f32') in pages of\n"
     "page_rows positions. See\n"
     "AttentionMask (attention/mask.h) for causal, window, scale (0: 1/sqrt(head_dim)), softcap, alibi.");
}

}  // namespace wren::py_bind
