#include "convert/quant_mix.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "util/errors.h"

namespace wren {
namespace {

// llama_ftype values (llama.h).
enum FileType : uint32_t {
  kAllF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ8_0 = 7, kQ5_0 = 8, kQ5_1 = 9, kQ2_K = 10, kQ3_K_S = 11,
  kQ3_K_M = 12, kQ3_K_L = 13, kQ4_K_S = 14, kQ4_K_M = 15, kQ5_K_S = 16, kQ5_K_M = 17, kQ6_K = 18,
  kIQ4_NL = 25, kIQ4_XS = 30, kBF16 = 32,
};

// The broad roles llama.cpp's rules tell apart, from the GGUF tensor name.
enum class Role { kOutput, kTokenEmbd, kAttnV, kAttnK, kAttnQ, kAttnOutput, kFfnUp, kFfnGate, kFfnDown, kOther };

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

Role role_of(const std::string& name) {
  if (name == "output.weight") return Role::kOutput;
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight") return Role::kTokenEmbd;
  // Fused QKV and MLA's kv_b count as attn_v: the value projection is the sensitive part.
  if (has(name, "attn_qkv.weight") || has(name, "attn_kv_b.weight") || has(name, "attn_v.weight")) return Role::kAttnV;
  if (has(name, "attn_k.weight")) return Role::kAttnK;
  if (has(name, "attn_q.weight")) return Role::kAttnQ;
  if (has(name, "attn_output.weight")) return Role::kAttnOutput;
  if (has(name, "ffn_up")) return Role::kFfnUp;
  if (has(name, "ffn_gate")) return Role::kFfnGate;
  if (has(name, "ffn_down")) return Role::kFfnDown;
  return Role::kOther;
}

// Dimensions as ggml counts them: trailing 1s do not count.
int n_dims(const GgufTensor& t) {
  int n = static_cast<int>(t.shape.size());
  while (n > 1 && t.shape[static_cast<size_t>(n - 1)] == 1) --n;
  return n;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Matrices are quantized; vectors, norms and a few small or position-like tables keep their type.
bool may_quantize(const GgufTensor& t) {
  if (n_dims(t) < 2 || !ends_with(t.name, "weight")) return false;
  const std::string& n = t.name;
  static const char* const kKeep[] = {
      "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
      "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
      "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
      "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight",
      "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight",
      "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd",
      "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook",
      "mm.a.code_embd"};
  for (const char* k : kKeep)
    if (has(n, k)) return false;
  return n != "position_embd.weight" && n != "token_types.weight";
}

bool is_quantized(DType t) { return t != DType::F32 && t != DType::F16 && t != DType::BF16; }

int block_of(DType t) { return static_cast<int>(dtype_info(t).block_size); }

// The layer a tensor belongs to (-1 for none), from its "blk.N." prefix.
int layer_of(const std::string& name) {
  int layer = -1;
  if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) return -1;
  return layer;
}

// A hyper-parameter that may be a per-layer array: its first value (def when absent).
uint64_t first_uint(const TensorSource& src, const std::string& key, uint64_t def) {
  const GgufValue* v = src.find(key);
  if (!v || v->type != GgufType::ARRAY) return src.get_uint(key, def);
  uint64_t first = def;
  v->for_each([&](size_t k, const GgufValue& e) {
    if (k == 0 && e.is_integer()) first = e.is_signed() ? static_cast<uint64_t>(std::max<int64_t>(0, e.i)) : e.u;
  });
  return first;
}

// More bits for the first and last eighth of the layers and every third one in between.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

struct MixState {
  const QuantMix& mix;
  std::string arch;
  int n_layer;
  int n_gqa;
  int n_expert;
  bool tied_embeddings;  // no output.weight: token_embd doubles as the output matrix
  int n_attn_v = 0, i_attn_v = 0, i_ffn_down = 0;
};

// The type a matrix gets under the mix before the block-size fallback (llama_tensor_get_type_impl).
DType mix_type(MixState& s, const GgufTensor& t, Role role) {
  const uint32_t ft = s.mix.file_type;
  DType type = s.mix.base;
  const bool falcon = s.arch == "falcon";
  if (role == Role::kOutput || (s.tied_embeddings && role == Role::kTokenEmbd)) {
    if (falcon || t.shape[0] % static_cast<uint64_t>(block_of(type)) != 0) return DType::Q8_0;
    return type == DType::Q8_0 ? type : DType::Q6_K;
  }
  if (role == Role::kTokenEmbd) return type;
  if (role == Role::kAttnV) {
    if (ft == kQ2_K) type = s.n_gqa >= 4 ? DType::Q4_K : DType::Q3_K;
    else if (ft == kQ3_K_M) type = s.i_attn_v < 2 ? DType::Q5_K : DType::Q4_K;
    else if (ft == kQ3_K_L) type = DType::Q5_K;
    else if ((ft == kIQ4_NL || ft == kIQ4_XS) && s.n_gqa >= 4) type = DType::Q5_K;
    else if ((ft == kQ4_K_M || ft == kQ5_K_M) && use_more_bits(s.i_attn_v, s.n_attn_v)) type = DType::Q6_K;
    else if (ft == kQ4_K_S && s.i_attn_v < 4) type = DType::Q5_K;
    if (s.n_expert == 8) type = DType::Q8_0;
    ++s.i_attn_v;
    return type;
  }
  if (role == Role::kAttnK) return s.n_expert == 8 ? DType::Q8_0 : type;
  if (role == Role::kFfnDown) {
    int i = s.i_ffn_down++;
    const int n = s.n_layer;
    if (s.n_expert > 1) {  // expert tensors are not in layer order: take the layer from the name
      i = layer_of(t.name);
      WREN_CHECK(i >= 0 && i < n, FormatError, "tensor '", t.name, "': layer ", i, " is outside 0..", n - 1);
    }
    if (ft == kQ2_K) type = DType::Q3_K;
    else if (ft == kQ3_K_M) type = i < n / 16 ? DType::Q5_K : (!falcon || use_more_bits(i, n)) ? DType::Q4_K : DType::Q3_K;
    else if (ft == kQ3_K_L) type = falcon ? DType::Q4_K : DType::Q5_K;
    else if (ft == kQ4_K_M) {
      if (falcon) type = i < n / 16 ? DType::Q6_K : use_more_bits(i, n) ? DType::Q5_K : DType::Q4_K;
      else if (use_more_bits(i, n)) type = DType::Q6_K;
    } else if (i < n / 8 && (ft == kIQ4_NL || ft == kIQ4_XS)) type = DType::Q5_K;
    else if (ft == kQ5_K_M && use_more_bits(i, n)) type = DType::Q6_K;
    else if (ft == kQ4_K_S && !falcon && i < n / 8) type = DType::Q5_K;
    return type;
  }
  if (role == Role::kAttnOutput) {
    if (falcon) return ft == kQ3_K_L ? DType::Q4_K : type;
    if (s.n_expert == 8) {
      const bool bump = ft == kQ2_K || ft == kQ3_K_S || ft == kQ3_K_M || ft == kIQ4_NL || ft == kQ4_K_S ||
                        ft == kQ4_K_M || ft == kIQ4_XS;
      return bump ? DType::Q5_K : type;
    }
    if (ft == kQ2_K) return DType::Q3_K;
    if (ft == kQ3_K_M) return DType::Q4_K;
    if (ft == kQ3_K_L) return DType::Q5_K;
  }
  return type;
}

// A row length that is not a multiple of the type's block: the nearest type whose block (32) fits,
// else F16.
DType fallback(DType type, uint64_t row) {
  if (row % static_cast<uint64_t>(block_of(type)) == 0) return type;
  DType alt = type;
  switch (type) {
    case DType::IQ4_XS: alt = DType::IQ4_NL; break;
    case DType::Q2_K: case DType::Q3_K: alt = DType::Q4_0; break;
    case DType::Q4_K: alt = DType::Q5_0; break;
    case DType::Q5_K: alt = DType::Q5_1; break;
    case DType::Q6_K: alt = DType::Q8_0; break;
    default: break;
  }
  return row % static_cast<uint64_t>(block_of(alt)) == 0 ? alt : DType::F16;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

const std::vector<QuantMix>& quant_mixes() {
  static const std::vector<QuantMix> kMixes = {
      {"Q4_0", kQ4_0, DType::Q4_0, "4.5 bits per weight"},
      {"Q4_1", kQ4_1, DType::Q4_1, "5.0 bpw"},
      {"Q5_0", kQ5_0, DType::Q5_0, "5.5 bpw"},
      {"Q5_1", kQ5_1, DType::Q5_1, "6.0 bpw"},
      {"IQ4_NL", kIQ4_NL, DType::IQ4_NL, "4.5 bpw, non-linear levels"},
      {"IQ4_XS", kIQ4_XS, DType::IQ4_XS, "4.25 bpw, non-linear levels"},
      {"Q2_K", kQ2_K, DType::Q2_K, "about 2.6 bpw (Q2_K/Q3_K/Q4_K)"},
      {"Q3_K_S", kQ3_K_S, DType::Q3_K, "about 3.4 bpw"},
      {"Q3_K_M", kQ3_K_M, DType::Q3_K, "about 3.7 bpw"},
      {"Q3_K_L", kQ3_K_L, DType::Q3_K, "about 4.0 bpw"},
      {"Q4_K_S", kQ4_K_S, DType::Q4_K, "about 4.5 bpw"},
      {"Q4_K_M", kQ4_K_M, DType::Q4_K, "about 4.8 bpw (the common choice)"},
      {"Q5_K_S", kQ5_K_S, DType::Q5_K, "about 5.5 bpw"},
      {"Q5_K_M", kQ5_K_M, DType::Q5_K, "about 5.7 bpw"},
      {"Q6_K", kQ6_K, DType::Q6_K, "6.6 bpw"},
      {"Q8_0", kQ8_0, DType::Q8_0, "8.5 bpw"},
      {"F16", kF16, DType::F16, "16 bpw"},
      {"BF16", kBF16, DType::BF16, "16 bpw, bfloat16"},
      {"F32", kAllF32, DType::F32, "32 bpw"},
  };
  return kMixes;
}

const QuantMix& find_quant_mix(const std::string& name) {
  std::string n = upper(name);
  if (n == "Q4_K") n = "Q4_K_M";
  else if (n == "Q5_K") n = "Q5_K_M";
  else if (n == "Q3_K") n = "Q3_K_M";
  for (const QuantMix& m : quant_mixes())
    if (n == m.name) return m;
  std::string valid;
  for (const QuantMix& m : quant_mixes()) valid += (valid.empty() ? "" : ", ") + std::string(m.name);
  throw InvalidArgument(str_cat("unknown quantization type '", name, "' (valid: ", valid, ")"));
}

std::vector<TensorPlan> plan_quant_mix(const TensorSource& src, const QuantMix& mix) {
  const std::vector<GgufTensor>& ts = src.tensors();
  std::vector<TensorPlan> plan(ts.size());
  for (size_t i = 0; i < ts.size(); ++i) plan[i] = {i, ts[i].dtype};
  std::stable_sort(plan.begin(), plan.end(), [&](const TensorPlan& a, const TensorPlan& b) {
    const int la = layer_of(ts[a.index].name), lb = layer_of(ts[b.index].name);
    return la != lb ? la < lb : ts[a.index].name < ts[b.index].name;
  });

  MixState s{mix, src.get_string("general.architecture", ""), 0, 0, 0, true};
  const std::string& a = s.arch;
  s.n_layer = static_cast<int>(first_uint(src, a + ".block_count", 0));
  const uint64_t n_head = first_uint(src, a + ".attention.head_count", 0);
  const uint64_t n_head_kv = first_uint(src, a + ".attention.head_count_kv", n_head);
  s.n_gqa = n_head_kv ? static_cast<int>(n_head / n_head_kv) : 0;
  s.n_expert = static_cast<int>(first_uint(src, a + ".expert_count", 0));
  for (const GgufTensor& t : ts) {
    const Role r = role_of(t.name);
    if (r == Role::kAttnV) ++s.n_attn_v;
    if (r == Role::kOutput) s.tied_embeddings = false;
  }

  for (TensorPlan& p : plan) {
    const GgufTensor& t = ts[p.index];
    if (!may_quantize(t)) continue;  // keeps its own type
    if (!is_quantized(mix.base)) {
      p.to = mix.base;
      continue;
    }
    p.to = fallback(mix_type(s, t, role_of(t.name)), t.shape[0]);
  }
  return plan;
}

}  // namespace wren
