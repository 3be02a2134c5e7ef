#include "format/lora_source.h"

#include "util/errors.h"

namespace wren {

LoraSource::LoraSource(std::unique_ptr<TensorSource> base, const std::vector<LoraSpec>& specs,
                       const std::function<bool()>& cancel)
    : TensorSource(base->path()), base_(std::move(base)) {
  adapters_.reserve(specs.size());
  for (const LoraSpec& spec : specs) {
    if (cancel && cancel()) throw Interrupted();
    adapters_.push_back(read_lora_adapter(spec, *base_));
  }
  for (const LoraAdapter& a : adapters_)
    for (const LoraUpdate& u : a.updates) {
      by_target_[u.target].push_back(&u);
      bytes_ += (u.a.size() + u.b.size()) * sizeof(float);
    }
  for (const std::string& key : base_->keys()) add_value(key, *base_->find(key));
  for (const GgufTensor& t : base_->tensors()) add_tensor(t);
}

LoraSource::~LoraSource() = default;

std::vector<const LoraUpdate*> LoraSource::lora_updates(const std::string& name) const {
  auto it = by_target_.find(name);
  return it == by_target_.end() ? std::vector<const LoraUpdate*>{} : it->second;
}

}  // namespace wren
