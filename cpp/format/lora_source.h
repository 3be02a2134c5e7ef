// A base model with LoRA adapters merged in, seen as a TensorSource: every tensor an adapter updates
// is an owned float32 copy W + sum of s * B A (format/lora_merge.h), computed once when this is
// built; every other tensor and all metadata are the base's, bytes still in its mapping. Models
// read it like any file and need no LoRA code.
//
// Memory: 4 bytes per element of each updated matrix, whatever its type in the base (a Q4_0 matrix
// grows about 7x), and those matrices run at float32 speed. Adapters usually touch a few attention
// projections; an adapter on every projection of a quantized model costs about a float32 copy of it.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "format/lora_adapter.h"
#include "format/tensor_source.h"
#include "util/thread_pool.h"

namespace wren {

class LoraSource : public TensorSource {
 public:
  // Reads every adapter of specs against base (read_lora_adapter) and merges them; updates of one
  // matrix by several adapters add up. cancel (may be empty) is asked between matrices; when it
  // returns true, Interrupted is thrown.
  LoraSource(std::unique_ptr<TensorSource> base, const std::vector<LoraSpec>& specs, ThreadPool* pool,
             const std::function<bool()>& cancel);
  ~LoraSource() override;

  uint64_t file_size() const override { return base_->file_size(); }
  void release(const uint8_t* p, uint64_t n) const override;

  const TensorSource& base() const { return *base_; }
  // The adapters as read (their A and B freed once merged): path, format, scale, alpha, targets, ranks.
  const std::vector<LoraAdapter>& adapters() const { return adapters_; }
  // Bytes of the merged float32 copies.
  uint64_t merged_bytes() const { return merged_bytes_; }

 private:
  std::unique_ptr<TensorSource> base_;
  std::vector<LoraAdapter> adapters_;
  std::vector<std::vector<float>> merged_;
  uint64_t merged_bytes_ = 0;
};

}  // namespace wren
