// Binding tensors from a GGUF file to typed views, checking names, shapes and types.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "format/tensor_source.h"
#include "kernels/matmul.h"
#include "util/thread_pool.h"

namespace wren {

// Owns the load-time copies of weights (the packed Q4_0/Q4_1/Q8_0 matrices): a bump allocator over
// large anonymous mappings that ask for transparent huge pages, so streaming the weights each token
// is not slowed by TLB misses and prefetchers stopping at every 4 KiB page.
class WeightArena {
 public:
  WeightArena() = default;
  ~WeightArena();
  WeightArena(const WeightArena&) = delete;
  WeightArena& operator=(const WeightArena&) = delete;

  uint8_t* alloc(size_t bytes);  // 64-byte aligned, uninitialized
  size_t bytes() const { return used_total_; }

 private:
  struct Chunk {
    uint8_t* base;
    size_t size;
  };
  std::vector<Chunk> chunks_;
  size_t used_ = 0;  // in the last chunk
  size_t used_total_ = 0;
};

// Binds named tensors to typed views. With an arena, matrices of the packable types are re-laid
// out into it (tensor/packed.h) on the pool's threads and their file pages released.
class WeightBinder {
 public:
  explicit WeightBinder(const TensorSource& f, WeightArena* arena = nullptr, ThreadPool* pool = nullptr)
      : f_(f), arena_(arena), pool_(pool) {}
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
  // token_embd.weight: (n_vocab, dim), n_vocab read from the tensor's shape.
  QuantMatrix token_embedding(int64_t dim) const;
  // A 1-D float vector of length n (F32/F16/BF16 are converted once; they are tiny).
  std::vector<float> vector(const std::string& name, int64_t n) const;

 private:
  const GgufTensor& get(const std::string& name) const;
  // rows x cols of t's type starting at `data` (inside t); packed into the arena when packable.
  // release: t is wholly copied once this returns, so its file pages may go.
  QuantMatrix bind(const GgufTensor& t, const uint8_t* data, int64_t rows, int64_t cols, bool release) const;
  const TensorSource& f_;
  WeightArena* arena_;
  ThreadPool* pool_;
};

}  // namespace wren
