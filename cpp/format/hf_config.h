// config.json as the converter reads it: hyper-parameters looked up under any of their spellings.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>

#include "format/json.h"

namespace wren {

class HfConfig {
 public:
  explicit HfConfig(const JsonValue& root);

  const JsonValue& root() const { return root_; }
  // The first of keys that is present and not null.
  const JsonValue* find(std::initializer_list<const char*> keys) const;
  std::optional<int64_t> opt_int(std::initializer_list<const char*> keys) const;
  std::optional<double> opt_double(std::initializer_list<const char*> keys) const;
  // Required: FormatError "config.json: $: required key ... is missing" when absent.
  int64_t integer(std::initializer_list<const char*> keys) const;
  double number(std::initializer_list<const char*> keys) const;
  std::string model_type() const;

  // RoPE parameters: `rope_parameters` (transformers 5) or `rope_scaling`, with the top-level
  // rope_theta / partial_rotary_factor folded in (its full-attention entry when split by layer type).
  const JsonValue* rope(const char* key) const;
  // rope_theta of the sliding-window layers, when given separately.
  std::optional<double> local_rope_theta() const;

 private:
  const JsonValue& root_;
  const JsonValue* rope_ = nullptr;
  const JsonValue* local_rope_ = nullptr;
};

}  // namespace wren
