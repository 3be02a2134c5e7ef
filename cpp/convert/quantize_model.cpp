#include "convert/quantize_model.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

#include "convert/quant_mix.h"
#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "format/lora_merge.h"
#include "format/lora_source.h"
#include "format/tensor_source.h"
#include "runtime/engine.h"
#include "tensor/quant.h"
#include "tensor/quantize.h"
#include "util/errors.h"
#include "util/thread_pool.h"

namespace wren {
namespace {

constexpr uint32_t kQuantizationVersion = 2;     // general.quantization_version of the block layouts
constexpr uint64_t kSlabElements = 1u << 22;     // floats dequantized per slab (16 MiB), at least one row

GgufValue u32(uint64_t v) {
  GgufValue x;
  x.type = GgufType::U32;
  x.u = v;
  return x;
}

uint64_t source_alignment(const TensorSource& src) {
  if (const auto* l = dynamic_cast<const LoraSource*>(&src)) return source_alignment(l->base());
  if (const auto* g = dynamic_cast<const GgufFile*>(&src)) return g->alignment();
  return 32;
}

// Hugging Face Llama-family folders keep the Q/K rows of each head in transformers' order (the source
// says so with wrenlm.rope.neox); llama.cpp's GGUF files interleave the two halves of every head
// (its converter permutes them for its RoPE). Output row r takes the source row given here.
struct RowOrder {
  uint64_t head_dim = 0;  // 0: rows stay in place
  uint64_t source_row(uint64_t r) const {
    if (!head_dim) return r;
    const uint64_t head = r / head_dim, k = r % head_dim;
    return head * head_dim + (k % 2) * (head_dim / 2) + k / 2;
  }
};

// The row order of tensor t in the output, and the row length it is converted with (1 for a permuted
// vector: a bias's elements are its "rows").
RowOrder row_order(const TensorSource& src, const GgufTensor& t, uint64_t* cols) {
  *cols = t.shape[0];
  if (!src.get_bool("wrenlm.rope.neox", false)) return {};
  int layer;
  char kind[16] = {}, part[16] = {};
  if (std::sscanf(t.name.c_str(), "blk.%d.attn_%1[qk].%15s", &layer, kind, part) != 3) return {};
  if (std::string(part) != "weight" && std::string(part) != "bias") return {};
  const std::string a = src.get_string("general.architecture", "");
  const uint64_t n_head = src.get_uint(a + ".attention.head_count");
  const uint64_t heads = kind[0] == 'q' ? n_head : src.get_uint(a + ".attention.head_count_kv", n_head);
  const bool vector = t.shape.size() == 1;
  const uint64_t rows = vector ? t.shape[0] : t.n_elements() / t.shape[0];
  if (vector) *cols = 1;
  if (!heads || rows % heads || (rows / heads) % 2)
    src.fail("tensor '" + t.name + "'", str_cat(rows, " rows do not split into ", heads, " heads of even size"));
  return {rows / heads};
}

// Quantizes output rows [r0, r0 + n) of tensor t (rows of `cols` elements, taken from the source in
// `order`) to type `to` into out, on the pool: each task takes a run of rows, dequantizes each row
// into its thread's float buffer and quantizes it into place. With `merged` (t with its LoRA updates
// added, float32 in source row order), rows come from there instead.
void convert_rows(ThreadPool& pool, const TensorSource& src, const GgufTensor& t, uint64_t cols, RowOrder order,
                  DType to, uint64_t r0, uint64_t n, std::vector<std::vector<float>>& scratch, uint8_t* out,
                  const float* merged) {
  const size_t in_row = row_bytes(t.dtype, cols), out_row = row_bytes(to, cols);
  const int64_t n_tasks = static_cast<int64_t>(std::min<uint64_t>(n, static_cast<uint64_t>(pool.size()) * 4));
  pool.parallel_for(n_tasks, [&](int64_t task, int thread) {
    const uint64_t a = n * static_cast<uint64_t>(task) / static_cast<uint64_t>(n_tasks);
    const uint64_t b = n * static_cast<uint64_t>(task + 1) / static_cast<uint64_t>(n_tasks);
    float* row = scratch[static_cast<size_t>(thread)].data();
    for (uint64_t r = a; r < b; ++r) {
      const uint64_t from = order.source_row(r0 + r);
      const float* x = merged ? merged + from * cols : row;
      if (!merged) dequantize_row(t.dtype, t.data + from * in_row, row, static_cast<size_t>(cols));
      try {
        quantize_row(to, x, out + r * out_row, static_cast<size_t>(cols));
      } catch (const InvalidArgument& e) {
        src.fail(str_cat("tensor '", t.name, "' row ", r0 + r), e.what());
      }
    }
  });
}

}  // namespace

uint64_t quantize_model(const std::string& src_path, const std::string& dst_path, const QuantizeOptions& options,
                        const QuantizeCallback& callback) {
  const QuantMix& mix = find_quant_mix(options.mix);
  WREN_CHECK(options.n_threads >= 0, InvalidArgument, "n_threads must be >= 0, got ", options.n_threads);
  std::unique_ptr<TensorSource> src = open_model_source(src_path);
  if (!options.loras.empty()) src = std::make_unique<LoraSource>(std::move(src), options.loras, nullptr);
  const std::vector<GgufTensor>& ts = src->tensors();
  WREN_CHECK(!ts.empty(), FormatError, src_path, ": no tensors to quantize");
  const std::vector<TensorPlan> plan = plan_quant_mix(*src, mix);
  for (const TensorPlan& p : plan) {
    const GgufTensor& t = ts[p.index];
    if (p.to == t.dtype) continue;
    if (!dtype_info(t.dtype).supported)
      throw UnsupportedError(str_cat(src_path, ": tensor '", t.name, "' is ", dtype_name(t.dtype),
                                     ", which wrenlm cannot read to requantize"));
    if (!can_quantize(p.to))
      throw UnsupportedError(str_cat(src_path, ": tensor '", t.name, "' would become ", dtype_name(p.to),
                                     ", which wrenlm cannot write (can: ", quantizable_dtypes(), ")"));
  }

  const std::string tmp = dst_path + ".tmp";
  GgufWriter w(tmp, source_alignment(*src));
  for (const std::string& k : src->keys()) w.set_value(k, *src->find(k));
  w.set_value("general.quantization_version", u32(kQuantizationVersion));
  w.set_value("general.file_type", u32(mix.file_type));
  // Split files are written whole; wrenlm.* keys describe our own view of a source (an HF folder's
  // Q/K order, undone below), not the file we write.
  for (const char* k : {"split.no", "split.count", "split.tensors.count", "wrenlm.rope.neox"}) w.remove_value(k);
  QuantizeProgress pr;
  pr.n_tensors = plan.size();
  for (const TensorPlan& p : plan) {
    const GgufTensor& t = ts[p.index];
    w.add_tensor(t.name, p.to, t.shape);
    pr.bytes_total += t.nbytes;
  }

  try {
    w.write_header();
    const int n_threads = options.n_threads > 0 ? options.n_threads : default_thread_count();
    ThreadPool pool(n_threads);
    std::vector<std::vector<float>> scratch(static_cast<size_t>(n_threads));
    std::vector<uint8_t> out;
    for (size_t i = 0; i < plan.size(); ++i) {
      const GgufTensor& t = ts[plan[i].index];
      pr.tensor = i;
      pr.name = t.name;
      pr.from = t.dtype;
      pr.to = plan[i].to;
      if (callback) callback(pr);
      uint64_t cols;
      const RowOrder order = row_order(*src, t, &cols);
      const std::vector<const LoraUpdate*> updates = src->lora_updates(t.name);
      // (rows, cols) float32 of W + its updates: adapted matrices are merged whole before quantizing.
      const std::vector<float> merged = updates.empty() ? std::vector<float>() : merge_lora_matrix(t, updates, &pool);
      if (t.dtype == plan[i].to && !order.head_dim && updates.empty()) {  // kept: copied as it is, in slabs
        for (uint64_t off = 0; off < t.nbytes; off += 4 * kSlabElements) {
          const uint64_t n = std::min<uint64_t>(4 * kSlabElements, t.nbytes - off);
          w.write_data(t.data + off, static_cast<size_t>(n));
          src->release(t.data + off, n);
          pr.bytes_read += n;
          pr.bytes_written = w.bytes_written();
          if (callback) callback(pr);
        }
        continue;
      }
      const uint64_t rows = t.n_elements() / cols;
      const uint64_t slab_rows = std::max<uint64_t>(1, kSlabElements / cols);
      const size_t in_row = row_bytes(t.dtype, cols), out_row = row_bytes(plan[i].to, cols);
      for (auto& s : scratch) s.resize(static_cast<size_t>(cols));
      for (uint64_t r0 = 0; r0 < rows; r0 += slab_rows) {
        const uint64_t n = std::min(slab_rows, rows - r0);
        out.resize(static_cast<size_t>(n) * out_row);
        convert_rows(pool, *src, t, cols, order, plan[i].to, r0, n, scratch, out.data(),
                     merged.empty() ? nullptr : merged.data());
        w.write_data(out.data(), out.size());
        if (!order.head_dim) src->release(t.data + r0 * in_row, n * in_row);
        pr.bytes_read += n * in_row;
        pr.bytes_written = w.bytes_written();
        if (callback) callback(pr);
      }
    }
    w.finish();
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), dst_path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw WrenError(str_cat(dst_path, ": cannot rename the finished ", tmp, " into place"));
  }
  return pr.bytes_written;
}

}  // namespace wren
