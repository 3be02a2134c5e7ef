#include "format/hf_config.h"

#include "tokenizer/vocab_limits.h"
#include "util/errors.h"

namespace wren {

namespace {

// Every count and size config.json may give, under each spelling the families read, with the largest
// value accepted: checked when the config is opened, before any of them enters arithmetic (a zero
// head count is a division by zero; a huge head size, a loop of billions). The bounds are those the
// GGUF hyper-parameters are held to (models/hparams.cpp), or the tokenizer's id range.
struct CountKey {
  const char* key;
  int64_t max;
};
constexpr int64_t kMaxHeads = 4096, kMaxWidth = int64_t(1) << 20, kMaxFfn = int64_t(1) << 22;
constexpr CountKey kCountKeys[] = {
    {"num_attention_heads", kMaxHeads}, {"n_head", kMaxHeads},        {"n_heads", kMaxHeads},
    {"num_heads", kMaxHeads},           {"num_key_value_heads", kMaxHeads}, {"n_kv_heads", kMaxHeads},
    {"n_head_kv", kMaxHeads},           {"head_dim", 4096},           {"hidden_size", kMaxWidth},
    {"n_embd", kMaxWidth},              {"dim", kMaxWidth},           {"num_hidden_layers", 1024},
    {"n_layer", 1024},
    {"n_layers", 1024},                 {"intermediate_size", kMaxFfn}, {"n_inner", kMaxFfn},
    {"vocab_size", kMaxVocab},          {"type_vocab_size", kMaxVocab},
    {"num_local_experts", 4096},        {"num_experts_per_tok", 4096},
    {"max_position_embeddings", int64_t(1) << 31}, {"n_positions", int64_t(1) << 31},
    {"original_max_position_embeddings", int64_t(1) << 31},
};

}  // namespace

HfConfig::HfConfig(const JsonValue& root) : root_(root) {
  for (const CountKey& k : kCountKeys)
    if (const JsonValue* v = root.find_non_null(k.key)) {
      const int64_t n = v->as_int();
      if (n < 1 || n > k.max) v->fail(str_cat("expected a count in 1..", k.max, ", found ", n));
    }
  rope_ = root.find_non_null("rope_parameters");
  if (!rope_) rope_ = root.find_non_null("rope_scaling");
  if (rope_ && !rope_->is_object()) rope_->fail(str_cat("expected an object, found ", rope_->kind_name()));
  if (rope_) {
    if (const JsonValue* local = rope_->find_non_null("sliding_attention")) local_rope_ = local;
    if (const JsonValue* full = rope_->find_non_null("full_attention")) rope_ = full;
  }
}

std::optional<double> HfConfig::local_rope_theta() const {
  if (local_rope_)
    if (const JsonValue* t = local_rope_->find_non_null("rope_theta")) return t->as_double();
  return opt_double({"local_rope_theta", "rope_local_theta", "rope_theta_local", "swa_rope_theta",
                     "rope_local_base_freq"});
}

const JsonValue* HfConfig::find(std::initializer_list<const char*> keys) const {
  for (const char* k : keys)
    if (const JsonValue* v = root_.find_non_null(k)) return v;
  return nullptr;
}

std::optional<int64_t> HfConfig::opt_int(std::initializer_list<const char*> keys) const {
  const JsonValue* v = find(keys);
  return v ? std::optional<int64_t>(v->as_int()) : std::nullopt;
}

std::optional<double> HfConfig::opt_double(std::initializer_list<const char*> keys) const {
  const JsonValue* v = find(keys);
  return v ? std::optional<double>(v->as_double()) : std::nullopt;
}

int64_t HfConfig::integer(std::initializer_list<const char*> keys) const {
  if (const JsonValue* v = find(keys)) return v->as_int();
  std::string names;
  for (const char* k : keys) names += (names.empty() ? "\"" : " or \"") + std::string(k) + "\"";
  root_.fail(str_cat("required key ", names, " is missing"));
}

double HfConfig::number(std::initializer_list<const char*> keys) const {
  if (const JsonValue* v = find(keys)) return v->as_double();
  std::string names;
  for (const char* k : keys) names += (names.empty() ? "\"" : " or \"") + std::string(k) + "\"";
  root_.fail(str_cat("required key ", names, " is missing"));
}

std::string HfConfig::model_type() const { return root_.at("model_type").as_string(); }

const JsonValue* HfConfig::rope(const char* key) const {
  if (rope_)
    if (const JsonValue* v = rope_->find_non_null(key)) return v;
  if (std::string(key) == "rope_type" && rope_) return rope_->find_non_null("type");
  if (std::string(key) == "rope_theta") return find({"global_rope_theta", "rope_global_theta", "rope_theta_global",
                                                     "rope_theta", "rotary_emb_base"});
  if (std::string(key) == "partial_rotary_factor") return find({"partial_rotary_factor", "rope_pct", "rope_percent"});
  if (std::string(key) == "original_max_position_embeddings") return find({"original_max_position_embeddings"});
  return nullptr;
}

}  // namespace wren
