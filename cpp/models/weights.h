// Binding tensors from a GGUF file to typed views, checking names, shapes and types.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "format/tensor_source.h"
#include "kernels/matmul.h"
#include "util/thread_pool.h"

namespace wren {

// Reports progress of a long step: done and total (bytes), called on the calling thread. It may throw
// (e.g. an interruption) to stop the step between two units of work.
using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;

// Owns the re-laid-out copies of weights (the packed Q4_0/Q4_1/Q8_0 matrices): a bump allocator over
// large anonymous mappings that ask for transparent huge pages, so streaming the weights each token
// is not slowed by TLB misses and prefetchers stopping at every 4 KiB page.
//
// Binding only reserves the space and records the copy; pack_pending() runs them all, once, before
// the first forward pass. Loading therefore touches no weight bytes (as with a plain mmap), and the
// copy is paid by the first request, with every thread of the pool and one parallel job for the
// whole model. Source pages are dropped as they are copied, so the file and its copy are never
// both resident.
class WeightArena {
 public:
  WeightArena() = default;
  ~WeightArena();
  WeightArena(const WeightArena&) = delete;
  WeightArena& operator=(const WeightArena&) = delete;

  uint8_t* alloc(size_t bytes);  // 64-byte aligned, uninitialized
  size_t bytes() const { return used_total_; }

  // Records the re-layout of a file-order matrix at src (rows src_stride bytes apart) into dst
  // (packed_bytes(layout) bytes from alloc). release_from: the source whose pages the copied rows
  // may drop (null to keep them, when other views still read the same bytes).
  void defer_pack(const PackedMatrix& layout, uint8_t* dst, const uint8_t* src, size_t src_stride,
                  const TensorSource* release_from);
  // Runs every recorded re-layout on the pool (or this thread) and forgets them. Cheap when none.
  // progress (may be empty): called with (0, total) first, then after each slice of whole matrices
  // (about 1% of the bytes, at least one matrix), from this thread. If it throws, the matrices
  // already copied stay done and the others stay recorded, so a later call finishes the work.
  void pack_pending(ThreadPool* pool, const ProgressFn& progress = nullptr);
  // Bytes the recorded re-layouts will write (0 when none are pending).
  uint64_t pending_bytes() const;
  bool has_pending() const { return !jobs_.empty(); }

 private:
  struct Chunk {
    uint8_t* base;
    size_t size;
  };
  struct PackJob {
    PackedMatrix layout;
    uint8_t* dst;
    const uint8_t* src;
    size_t src_stride;
    const TensorSource* release_from;
  };
  // Packs jobs_[first, last) on the pool (or this thread).
  void pack_jobs(ThreadPool* pool, size_t first, size_t last);

  std::vector<Chunk> chunks_;
  std::vector<PackJob> jobs_;
  size_t used_ = 0;  // in the last chunk
  size_t used_total_ = 0;
};

// Binds named tensors to typed views. With an arena, matrices of the packable types get space in it
// and a recorded re-layout (tensor/packed.h); their views are valid once the arena's pack_pending()
// has run.
class WeightBinder {
 public:
  explicit WeightBinder(const TensorSource& f, WeightArena* arena = nullptr) : f_(f), arena_(arena) {}
  bool has(const std::string& name) const { return f_.find_tensor(name) != nullptr; }
  // A 2-D weight (rows x cols); FormatError if missing or misshapen, UnsupportedError if its type is.
  QuantMatrix matrix(const std::string& name, int64_t rows, int64_t cols) const;
  // Rows [row0, row0 + rows) of a 2-D weight of total_rows x cols: one part of a fused tensor
  // (Phi-3's attn_qkv, its gate/up ffn_up), bound as a matrix of its own.
  QuantMatrix matrix_rows(const std::string& name, int64_t total_rows, int64_t row0, int64_t rows, int64_t cols) const;
  // Expert e's (rows x cols) matrix of an n_experts mixture: from the stacked 3-D tensor
  // `stacked` ([cols, rows, n_experts], llama.cpp's blk.N.ffn_gate_exps) when the file has it, else
  // from the per-expert 2-D tensor `per_expert` with "{e}" replaced by e (blk.N.ffn_gate.{e}.weight).
  QuantMatrix expert(const std::string& stacked, const std::string& per_expert, int64_t e, int64_t n_experts,
                     int64_t rows, int64_t cols) const;
  // token_embd.weight: (n_vocab, dim), n_vocab read from the tensor's shape. Packed only when it
  // is also the output head (tied): row lookups read the file's rows in place, so an embedding
  // table that only serves lookups costs the pages of the tokens seen, not a copy of it all.
  QuantMatrix token_embedding(int64_t dim, bool output_head) const;
  // A 1-D float vector of length n (F32/F16/BF16 are converted once; they are tiny).
  std::vector<float> vector(const std::string& name, int64_t n) const;

 private:
  const GgufTensor& get(const std::string& name) const;
  // rows x cols of t's type from row row0 of t (rows of cols elements); packed into the arena when
  // packable. release: t is wholly copied by the re-layout, so its file pages may go. pack: false
  // keeps the file's layout (the view reads the mapping). The source's LoRA updates of t come along
  // as low-rank terms (their B rows row0..), applied by the kernels at run time.
  QuantMatrix bind(const GgufTensor& t, int64_t row0, int64_t rows, int64_t cols, bool release,
                   bool pack = true) const;
  std::vector<LowRankTerm> low_rank_terms(const GgufTensor& t, int64_t row0, int64_t rows, int64_t cols) const;
  const TensorSource& f_;
  WeightArena* arena_;
};

}  // namespace wren
