#include "format/lora_source.h"

#include <map>

#include "format/lora_merge.h"
#include "util/errors.h"

namespace wren {

LoraSource::LoraSource(std::unique_ptr<TensorSource> base, const std::vector<LoraSpec>& specs, ThreadPool* pool,
                       const std::function<bool()>& cancel)
    : TensorSource(base->path()), base_(std::move(base)) {
  for (const LoraSpec& spec : specs) adapters_.push_back(read_lora_adapter(spec, *base_));
  std::map<std::string, std::vector<const LoraUpdate*>> by_target;
  for (const LoraAdapter& a : adapters_)
    for (const LoraUpdate& u : a.updates) by_target[u.target].push_back(&u);

  for (const std::string& key : base_->keys()) add_value(key, *base_->find(key));
  for (const GgufTensor& t : base_->tensors()) {
    auto it = by_target.find(t.name);
    if (it == by_target.end()) {
      add_tensor(t);
      continue;
    }
    if (cancel && cancel()) throw Interrupted();
    std::vector<float> w;
    try {
      w = merge_lora_matrix(t, it->second, pool);
    } catch (const UnsupportedError& e) {
      throw UnsupportedError(str_cat("applying LoRA to ", base_->path(), ": tensor '", t.name, "': ", e.what()));
    }
    base_->release(t.data, t.nbytes);  // its bytes were wholly read; only the copy is used from here
    GgufTensor m = t;
    m.dtype = DType::F32;
    m.nbytes = w.size() * sizeof(float);
    m.data = reinterpret_cast<const uint8_t*>(w.data());
    merged_bytes_ += m.nbytes;
    merged_.push_back(std::move(w));  // the vector's buffer stays where it is
    add_tensor(std::move(m));
  }
  for (LoraAdapter& a : adapters_)
    for (LoraUpdate& u : a.updates) {
      std::vector<float>().swap(u.a);
      std::vector<float>().swap(u.b);
    }
}

LoraSource::~LoraSource() = default;

void LoraSource::release(const uint8_t* p, uint64_t n) const {
  for (const std::vector<float>& w : merged_) {
    const uint8_t* begin = reinterpret_cast<const uint8_t*>(w.data());
    if (p >= begin && p < begin + w.size() * sizeof(float)) return;  // our own copies stay
  }
  base_->release(p, n);
}

}  // namespace wren
