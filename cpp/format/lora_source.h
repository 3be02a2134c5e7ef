// A base model with LoRA adapters layered over it, seen as a TensorSource: every tensor and all
// metadata are the base's, bytes untouched in its mapping, and lora_updates(name) lists what the
// adapters add to each matrix. The weight binder (models/weights.h) attaches those updates to the
// matrices it binds, and the kernels add them at run time (kernels/low_rank.h): W keeps its type
// and fast kernels, and the adapters cost only their A and B in float32, rank * (rows + cols) * 4
// bytes per adapted matrix. merge_lora_matrix (format/lora_merge.h) remains for writing merged files.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "format/lora_adapter.h"
#include "format/tensor_source.h"

namespace wren {

class LoraSource : public TensorSource {
 public:
  // Reads every adapter of specs against base (read_lora_adapter); updates of one matrix by several
  // adapters add up. cancel (may be empty) is asked between adapters; when it returns true,
  // Interrupted is thrown.
  LoraSource(std::unique_ptr<TensorSource> base, const std::vector<LoraSpec>& specs,
             const std::function<bool()>& cancel);
  ~LoraSource() override;

  uint64_t file_size() const override { return base_->file_size(); }
  void release(const uint8_t* p, uint64_t n) const override { base_->release(p, n); }
  std::vector<const LoraUpdate*> lora_updates(const std::string& name) const override;

  const TensorSource& base() const { return *base_; }
  // The adapters as read: path, format, scale, alpha, and each update's target, rank, A and B.
  const std::vector<LoraAdapter>& adapters() const { return adapters_; }
  // Bytes of every adapter's A and B (float32), the memory the adapters hold.
  uint64_t bytes() const { return bytes_; }

 private:
  std::unique_ptr<TensorSource> base_;
  std::vector<LoraAdapter> adapters_;  // never resized once built: by_target_ points into it
  std::map<std::string, std::vector<const LoraUpdate*>> by_target_;
  uint64_t bytes_ = 0;
};

}  // namespace wren
