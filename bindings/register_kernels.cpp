// Low-level kernels exposed for tests: dequantization and each ISA's dot products next to the
// scalar reference, so tests can compare twins and oracles (gguf-py) directly.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include "bindings/register.h"
#include "kernels/kernel_table.h"
#include "kernels/matmul.h"
#include "tensor/decode_i8.h"
#include "tensor/dtype.h"
#include "tensor/packed.h"
#include "tensor/quant.h"
#include "util/blas.h"
#include "util/errors.h"
#include "util/profile.h"

namespace py = pybind11;

namespace wren::py_bind {
namespace {

using Bytes = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;
using Floats = py::array_t<float, py::array::c_style | py::array::forcecast>;

DType checked_type(uint32_t type_id, size_t n_bytes, size_t* n_out) {
  const DTypeInfo* info = dtype_info(type_id);
  WREN_CHECK(info && info->supported, InvalidArgument, "unsupported tensor type id ", type_id);
  WREN_CHECK(n_bytes % info->type_size == 0, InvalidArgument, n_bytes, " bytes is not a whole number of ",
             info->name, " blocks (", info->type_size, " bytes each)");
  *n_out = n_bytes / info->type_size * info->block_size;
  return static_cast<DType>(type_id);
}

// A packable matrix packed once and its activations quantized once, for the product bindings.
struct PackedCase {
  PackedMatrix p;
  std::vector<uint8_t> buf;
  std::vector<ActQ8> xq;
  int64_t n = 0, xs = 0;

  PackedCase(uint32_t type_id, const Bytes& raw, int64_t rows, const Floats& x) {
    size_t n_el;
    const DType t = checked_type(type_id, static_cast<size_t>(raw.size()), &n_el);
    WREN_CHECK(packable(t), InvalidArgument, dtype_name(t), " is not packable");
    WREN_CHECK(rows > 0 && n_el % static_cast<size_t>(rows) == 0, InvalidArgument, "bad row count ", rows);
    const int64_t cols = static_cast<int64_t>(n_el) / rows;
    WREN_CHECK(x.ndim() == 2 && x.shape(1) == cols, InvalidArgument, "x must be (n, ", cols, ")");
    n = x.shape(0);
    p = packed_layout(t, rows, cols);
    buf.resize(packed_bytes(p));
    pack_groups(p, raw.data(), row_bytes(t, static_cast<size_t>(cols)), 0, p.n_groups, buf.data());
    p.data = buf.data();
    xs = cols / kQK;
    xq.resize(static_cast<size_t>(n * xs));
    for (int64_t i = 0; i < n; ++i) quantize_act_q8(x.data() + i * cols, xq.data() + i * xs, static_cast<size_t>(cols));
  }
  void run(const KernelTable& kt, float* y) const { kt.gemm_packed(p, 0, p.n_groups, xq.data(), xs, n, y, p.rows); }
};

// One matrix of a `matmul` call: the file bytes, their packed copy (when packable) and the arrays
// its low-rank terms point into.
struct MatmulCase {
  QuantMatrix w;
  Bytes raw;
  std::vector<uint8_t> packed;
  std::vector<Floats> keep;
};

const char* path_name(MatmulPath p) {
  switch (p) {
    case MatmulPath::kPacked: return "packed";
    case MatmulPath::kF16: return "f16";
    case MatmulPath::kMatvec: return "matvec";
    case MatmulPath::kTiles: return "tiles";
    case MatmulPath::kI8: return "i8";
  }
  return "?";
}

const KernelTable& table(const std::string& isa) {
  if (isa == "generic") return reference_kernels();
  if ((isa == "avx2" || isa == "avx512") && isa_available(isa.c_str()))
    return isa == "avx2" ? *avx2_kernels() : *avx512_kernels();
  if (isa == "active") return active_kernels();
  throw InvalidArgument("unknown or unavailable ISA '" + isa + "'");
}

}  // namespace

void register_kernels(py::module_& m) {
  py::module_ k = m.def_submodule("kernels", "Kernel entry points for tests");
  k.def("dequantize", [](uint32_t type_id, Bytes raw) {
    size_t n;
    const DType t = checked_type(type_id, static_cast<size_t>(raw.size()), &n);
    Floats out(static_cast<py::ssize_t>(n));
    dequantize_row(t, raw.data(), out.mutable_data(), n);
    return out;
  }, py::arg("type_id"), py::arg("raw"), "Dequantizes raw blocks of a ggml type id to float32.");

  k.def("dot", [](const std::string& isa, uint32_t type_id, Bytes row, Floats x) {
    size_t n;
    const DType t = checked_type(type_id, static_cast<size_t>(row.size()), &n);
    WREN_CHECK(static_cast<size_t>(x.size()) == n, InvalidArgument, "x has ", x.size(), " elements, row has ", n);
    const KernelTable& kt = table(isa);
    switch (t) {
      case DType::F32: return kt.dot_f32(row.data(), x.data(), static_cast<int64_t>(n));
      case DType::F16: return kt.dot_f16(row.data(), x.data(), static_cast<int64_t>(n));
      default: throw InvalidArgument(str_cat("no float dot kernel for ", dtype_name(t)));
    }
  }, py::arg("isa"), py::arg("type_id"), py::arg("row"), py::arg("x"),
     "Dot product of one weight row with x using the given ISA's kernel ('generic', 'avx2', 'active').");

  // One ISA's F16 product of a (rows, cols) F16 matrix (given as uint16 bits) with x (n, cols),
  // over the rows [r0, r1) (default: all): returns (n, rows), zero outside [r0, r1).
  k.def("gemm_f16", [](const std::string& isa, py::array_t<uint16_t, py::array::c_style | py::array::forcecast> w,
                       Floats x, int64_t r0, int64_t r1) {
    WREN_CHECK(w.ndim() == 2 && x.ndim() == 2 && x.shape(1) == w.shape(1), InvalidArgument,
               "w must be (rows, cols) and x (n, cols)");
    const int64_t rows = w.shape(0), cols = w.shape(1), n = x.shape(0);
    if (r1 < 0) r1 = rows;
    WREN_CHECK(0 <= r0 && r0 <= r1 && r1 <= rows, InvalidArgument, "bad row range [", r0, ", ", r1, ")");
    py::array_t<float> y({n, rows});
    std::fill(y.mutable_data(), y.mutable_data() + n * rows, 0.f);
    table(isa).gemm_f16(w.data(), cols, r0, r1, x.data(), n, y.mutable_data(), rows);
    return y;
  }, py::arg("isa"), py::arg("w"), py::arg("x"), py::arg("r0") = 0, py::arg("r1") = -1);

  // Packs `rows` file-order rows of a packable matrix, then runs one ISA's packed product with the
  // rows of x (n, cols) quantized to 8 bits: returns (n, rows).
  k.def("gemm_packed", [](const std::string& isa, uint32_t type_id, Bytes raw, int64_t rows, Floats x) {
    PackedCase c(type_id, raw, rows, x);
    py::array_t<float> y({c.n, rows});
    c.run(table(isa), y.mutable_data());
    return y;
  }, py::arg("isa"), py::arg("type_id"), py::arg("raw"), py::arg("rows"), py::arg("x"));

  // A codebook-format matrix (tensor/decode_i8.h) of `rows` rows times x (n, cols) quantized to 8 bits,
  // row by row as matmul does: each row decoded to int8, then one ISA's dot_i8. Returns (n, rows).
  k.def("gemm_i8", [](const std::string& isa, uint32_t type_id, Bytes raw, int64_t rows, Floats x) {
    size_t n_el;
    const DType t = checked_type(type_id, static_cast<size_t>(raw.size()), &n_el);
    WREN_CHECK(decode_i8_fn(t) != nullptr, InvalidArgument, dtype_name(t), " has no int8 decoding");
    WREN_CHECK(rows > 0 && n_el % static_cast<size_t>(rows) == 0, InvalidArgument, "bad row count ", rows);
    const int64_t cols = static_cast<int64_t>(n_el) / rows;
    WREN_CHECK(cols % kQK == 0 && x.ndim() == 2 && x.shape(1) == cols, InvalidArgument, "x must be (n, ", cols,
               ") with cols a multiple of 32");
    const int64_t n = x.shape(0), xs = cols / kQK;
    std::vector<ActQ8> xq(static_cast<size_t>(n * xs));
    for (int64_t i = 0; i < n; ++i) quantize_act_q8(x.data() + i * cols, xq.data() + i * xs, static_cast<size_t>(cols));
    QuantMatrix w;
    w.dtype = t;
    w.rows = rows;
    w.cols = cols;
    w.row_stride = row_bytes(t, static_cast<size_t>(cols));
    w.data = raw.data();
    std::vector<float> scratch(static_cast<size_t>(i8_rows_scratch_bytes(cols) / 4));
    py::array_t<float> y({n, rows});
    const KernelTable& kt = table(isa);
    for (int64_t r = 0; r < rows; r += kI8GroupRows)
      i8_rows_times_tokens(kt, w, r, std::min(kI8GroupRows, rows - r), xq.data(), xs, n, y.mutable_data() + r, rows,
                           scratch.data());
    return y;
  }, py::arg("isa"), py::arg("type_id"), py::arg("raw"), py::arg("rows"), py::arg("x"));

  // The same product timed (packing and activation quantization excluded): the best of `repeat`
  // runs, in seconds, with the GIL released. For kernel tuning (bench/kernels.py).
  k.def("time_gemm_packed", [](const std::string& isa, uint32_t type_id, Bytes raw, int64_t rows, Floats x,
                               int repeat) {
    PackedCase c(type_id, raw, rows, x);
    std::vector<float> y(static_cast<size_t>(c.n * rows));
    const KernelTable& kt = table(isa);
    double best = 1e30;
    py::gil_scoped_release release;
    for (int i = 0; i < std::max(1, repeat); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      c.run(kt, y.data());
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
  }, py::arg("isa"), py::arg("type_id"), py::arg("raw"), py::arg("rows"), py::arg("x"), py::arg("repeat") = 5);

  k.def("dequantize_packed", [](uint32_t type_id, Bytes raw, int64_t rows) {
    size_t n_el;
    const DType t = checked_type(type_id, static_cast<size_t>(raw.size()), &n_el);
    WREN_CHECK(packable(t) && rows > 0 && n_el % static_cast<size_t>(rows) == 0, InvalidArgument, "bad input");
    const int64_t cols = static_cast<int64_t>(n_el) / rows;
    PackedMatrix p = packed_layout(t, rows, cols);
    std::vector<uint8_t> buf(packed_bytes(p));
    pack_groups(p, raw.data(), row_bytes(t, static_cast<size_t>(cols)), 0, p.n_groups, buf.data());
    p.data = buf.data();
    py::array_t<float> out({rows, cols});
    dequantize_packed_rows(p, 0, rows, out.mutable_data());
    return out;
  }, py::arg("type_id"), py::arg("raw"), py::arg("rows"), "Pack, then dequantize from the packed layout.");

  // wren::matmul as the models call it (matmul_shared_input for several matrices), with low-rank
  // terms. products: [(type_id, raw, rows, terms)], terms: [(a (rank, cols), b (total_rows, rank),
  // row0, scale)] (the matrix's rows are B's rows row0.., as for one part of a fused tensor);
  // packable types are packed as the weight binder packs them. x (n, cols); exact: float
  // activations (MatmulScratch::float_activations). Returns ([y (n, rows)], [path of each product]).
  k.def("matmul", [](const py::list& products, Floats x, bool exact, int n_threads) {
    WREN_CHECK(products.size() >= 1 && products.size() <= 4 && x.ndim() == 2 && n_threads >= 1, InvalidArgument,
               "1 to 4 products, x (n, cols), n_threads >= 1");
    const int64_t n = x.shape(0), cols = x.shape(1);
    std::vector<MatmulCase> cases(products.size());
    for (size_t i = 0; i < products.size(); ++i) {
      const auto item = products[i].cast<py::tuple>();
      const auto type_id = item[0].cast<uint32_t>();
      MatmulCase& c = cases[i];
      c.raw = item[1].cast<Bytes>();
      const Bytes& raw = c.raw;
      const auto rows = item[2].cast<int64_t>();
      size_t n_el;
      const DType t = checked_type(type_id, static_cast<size_t>(raw.size()), &n_el);
      WREN_CHECK(rows > 0 && n_el == static_cast<size_t>(rows * cols), InvalidArgument, "product ", i, ": expected ",
                 rows, " x ", cols, " elements, found ", n_el);
      c.w.dtype = t;
      c.w.rows = rows;
      c.w.cols = cols;
      c.w.row_stride = row_bytes(t, static_cast<size_t>(cols));
      c.w.data = raw.data();
      if (packable(t) && cols % pack_format(t).tile_cols == 0) {
        c.w.packed = packed_layout(t, rows, cols);
        c.packed.resize(packed_bytes(c.w.packed));
        pack_groups(c.w.packed, raw.data(), c.w.row_stride, 0, c.w.packed.n_groups, c.packed.data());
        c.w.packed.data = c.packed.data();
        c.w.data = nullptr;
      }
      for (const py::handle term : item[3].cast<py::list>()) {
        const auto tt = term.cast<py::tuple>();
        const auto a = tt[0].cast<Floats>();
        const auto b = tt[1].cast<Floats>();
        const auto row0 = tt[2].cast<int64_t>();
        WREN_CHECK(a.ndim() == 2 && a.shape(1) == cols && b.ndim() == 2 && b.shape(1) == a.shape(0) && row0 >= 0 &&
                       row0 + rows <= b.shape(0),
                   InvalidArgument, "term: a (rank, cols), b (total_rows, rank), row0 + rows <= total_rows");
        c.keep.push_back(a);
        c.keep.push_back(b);
        c.w.low_rank.push_back({a.data(), b.data() + row0 * a.shape(0), a.shape(0), tt[3].cast<float>()});
      }
    }
    ThreadPool pool(n_threads);
    MatmulScratch s(n_threads, cols, n);
    s.float_activations = exact;
    std::vector<py::array_t<float>> ys;
    py::list paths;
    for (MatmulCase& c : cases) {
      ys.emplace_back(std::vector<int64_t>{n, c.w.rows});
      paths.append(path_name(matmul_path(c.w, n, s)));
    }
    {
      py::gil_scoped_release nogil;
      auto y = [&](size_t i) { return ys[i].mutable_data(); };
      switch (cases.size()) {
        case 1: matmul(cases[0].w, x.data(), n, y(0), pool, s); break;
        case 2: matmul_shared_input({{&cases[0].w, y(0)}, {&cases[1].w, y(1)}}, x.data(), n, pool, s); break;
        case 3:
          matmul_shared_input({{&cases[0].w, y(0)}, {&cases[1].w, y(1)}, {&cases[2].w, y(2)}}, x.data(), n, pool, s);
          break;
        default:
          matmul_shared_input({{&cases[0].w, y(0)}, {&cases[1].w, y(1)}, {&cases[2].w, y(2)}, {&cases[3].w, y(3)}},
                              x.data(), n, pool, s);
      }
    }
    py::list out;
    for (auto& y : ys) out.append(y);
    return py::make_tuple(out, paths);
  }, py::arg("products"), py::arg("x"), py::kw_only(), py::arg("exact") = false, py::arg("n_threads") = 2);

  k.def("quantize_act_q8", [](Floats x) {
    const size_t n = static_cast<size_t>(x.size());
    WREN_CHECK(n % kQK == 0, InvalidArgument, "length must be a multiple of 32");
    std::vector<ActQ8> q(n / kQK);
    quantize_act_q8(x.data(), q.data(), n);
    Floats out(static_cast<py::ssize_t>(n));
    for (size_t b = 0; b < q.size(); ++b)
      for (int j = 0; j < kQK; ++j) out.mutable_data()[b * kQK + j] = q[b].d * q[b].qs[j];
    return out;
  }, py::arg("x"), "Round trip of the 8-bit activation quantization (for error bounds).");

  k.def("quantize_act", [](const std::string& isa, Floats x) {
    const int64_t n = x.size();
    WREN_CHECK(n % kQK == 0, InvalidArgument, "length must be a multiple of 32");
    std::vector<ActQ8> q(static_cast<size_t>(n / kQK));
    table(isa).quantize_act(x.data(), q.data(), n);
    py::array_t<int8_t> qs(n);
    py::array_t<float> scales({n / kQK, int64_t(4)});  // d, sum, half[0], half[1]
    py::array_t<int32_t> isums({n / kQK, int64_t(2)});
    for (size_t b = 0; b < q.size(); ++b) {
      std::copy(q[b].qs, q[b].qs + kQK, qs.mutable_data() + b * kQK);
      const float f[4] = {q[b].d, q[b].sum, q[b].half[0], q[b].half[1]};
      std::copy(f, f + 4, scales.mutable_data() + b * 4);
      std::copy(q[b].isum, q[b].isum + 2, isums.mutable_data() + b * 2);
    }
    return py::make_tuple(qs, scales, isums);
  }, py::arg("isa"), py::arg("x"), "The ISA's 8-bit activation blocks of x: (qs, [d, sum, half0, half1], isum) per block.");
  for (const auto& [name, entry] : {std::pair{"silu_mul", &KernelTable::silu_mul},
                                     std::pair{"gelu_tanh_mul", &KernelTable::gelu_tanh_mul}}) {
    k.def(name, [entry = entry](const std::string& isa, Floats gate, Floats up) {
      WREN_CHECK(gate.size() == up.size(), InvalidArgument, "gate and up differ in length");
      Floats out(gate.size());
      std::copy(gate.data(), gate.data() + gate.size(), out.mutable_data());
      (table(isa).*entry)(out.mutable_data(), up.data(), gate.size());
      return out;
    }, py::arg("isa"), py::arg("gate"), py::arg("up"), "act(gate) * up with the given ISA's gated-MLP kernel.");
  }

  // KV cache kernels: rows are float32 or float16 numpy arrays (n_keys, row_len); the head read is
  // columns [offset, offset + head_dim), so the row stride is exercised as in the cache.
  auto head = [](const py::array& rows, int64_t offset, int64_t head_dim, bool* f16) {
    WREN_CHECK(rows.ndim() == 2 && (rows.flags() & py::array::c_style), InvalidArgument,
               "cache rows must be a C-contiguous 2-D array");
    WREN_CHECK(rows.dtype().kind() == 'f' && (rows.itemsize() == 2 || rows.itemsize() == 4), InvalidArgument,
               "cache rows must be float16 or float32");
    WREN_CHECK(offset >= 0 && head_dim >= 0 && offset + head_dim <= rows.shape(1), InvalidArgument,
               "head [", offset, ", ", offset + head_dim, ") outside rows of ", rows.shape(1));
    *f16 = rows.itemsize() == 2;
    return static_cast<const uint8_t*>(rows.data()) + offset * rows.itemsize();
  };
  k.def("attn_scores", [head](const std::string& isa, Floats q, const py::array& keys, int64_t offset, float scale) {
    WREN_CHECK(q.ndim() == 2, InvalidArgument, "q must be (n_q, head_dim)");
    const int64_t n_q = q.shape(0), hd = q.shape(1), n_keys = keys.shape(0);
    bool f16;
    const uint8_t* k0 = head(keys, offset, hd, &f16);
    Floats s({n_q, n_keys});
    const KernelTable& kt = table(isa);
    (f16 ? kt.attn_scores_f16 : kt.attn_scores_f32)(q.data(), hd, n_q, k0, keys.shape(1), n_keys, hd, scale,
                                                    s.mutable_data(), n_keys);
    return s;
  }, py::arg("isa"), py::arg("q"), py::arg("keys"), py::arg("offset"), py::arg("scale"),
     "scale * q @ keys[:, offset:offset+head_dim].T with the given ISA's attention kernel.");
  k.def("attn_values", [head](const std::string& isa, Floats p, const py::array& values, int64_t offset,
                              int64_t head_dim) {
    WREN_CHECK(p.ndim() == 2 && p.shape(1) == values.shape(0), InvalidArgument, "p must be (n_q, n_keys)");
    const int64_t n_q = p.shape(0), n_keys = p.shape(1);
    bool f16;
    const uint8_t* v0 = head(values, offset, head_dim, &f16);
    Floats out({n_q, head_dim});
    const KernelTable& kt = table(isa);
    (f16 ? kt.attn_values_f16 : kt.attn_values_f32)(p.data(), n_keys, n_q, v0, values.shape(1), n_keys, head_dim,
                                                    out.mutable_data(), head_dim);
    return out;
  }, py::arg("isa"), py::arg("p"), py::arg("values"), py::arg("offset"), py::arg("head_dim"),
     "p @ values[:, offset:offset+head_dim] with the given ISA's attention kernel.");
  // One ISA's rows_dot_f32: y + scale * (b h) for b (n_rows, k), h (k), y (n_rows); returns the new y.
  k.def("rows_dot_f32", [](const std::string& isa, Floats b, Floats h, float scale, Floats y) {
    WREN_CHECK(b.ndim() == 2 && h.ndim() == 1 && h.shape(0) == b.shape(1) && y.ndim() == 1 && y.shape(0) == b.shape(0),
               InvalidArgument, "b (n_rows, k), h (k), y (n_rows)");
    py::array_t<float> out(b.shape(0));
    std::copy(y.data(), y.data() + y.size(), out.mutable_data());
    table(isa).rows_dot_f32(b.data(), b.shape(1), b.shape(0), h.data(), scale, out.mutable_data());
    return out;
  }, py::arg("isa"), py::arg("b"), py::arg("h"), py::arg("scale"), py::arg("y"));

  k.def("exp_sum", [](const std::string& isa, Floats x, float shift) {
    Floats y(x.size());
    std::copy(x.data(), x.data() + x.size(), y.mutable_data());
    const float sum = table(isa).exp_sum(y.mutable_data(), y.size(), shift);
    return py::make_tuple(y, sum);
  }, py::arg("isa"), py::arg("x"), py::arg("shift"), "(exp(x - shift), its sum) with the given ISA's softmax kernel.");
  k.def("f32_to_f16", [](const std::string& isa, Floats x) {
    py::array_t<uint16_t> y(x.size());
    table(isa).f32_to_f16(x.data(), y.mutable_data(), x.size());
    return y;
  }, py::arg("isa"), py::arg("x"), "IEEE half bits of x (round to nearest even).");
  k.def("f16_to_f32", [](const std::string& isa, py::array_t<uint16_t, py::array::c_style | py::array::forcecast> h) {
    Floats y(h.size());
    table(isa).f16_to_f32(h.data(), y.mutable_data(), h.size());
    return y;
  }, py::arg("isa"), py::arg("bits"), "float32 values of IEEE half bits.");

  k.def("active_isa", [] { return std::string(active_kernels().name); });
  k.def("available_isas", [] {
    py::list l;
    l.append("generic");
    for (const char* isa : {"avx2", "avx512"})
      if (isa_available(isa)) l.append(isa);
    return l;
  });
  k.def("select_isa", [](const std::string& name) { select_kernels(name.c_str()); }, py::arg("name"));
  k.def("blas_core", [] { return blas::core_name(); });
  m.def("profile", [] {
    py::dict d;
    for (const auto& [op, v] : profile::take()) d[py::str(op)] = py::make_tuple(v.first, v.second);
    return d;
  }, "Per-operation (seconds, calls) since the last call; collected only when WRENLM_PROFILE=1.");
}

}  // namespace wren::py_bind
