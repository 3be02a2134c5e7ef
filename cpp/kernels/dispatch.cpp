#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <cstdlib>
#include <cstring>

#include "kernels/kernel_table.h"
#include "util/errors.h"

namespace wren {
namespace {

#if defined(__x86_64__) || defined(__i386__)
// F16C from CPUID leaf 1 (ECX bit 29): clang before 16 has no "f16c" in __builtin_cpu_supports.
bool cpu_has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
}
#endif

bool cpu_has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
#else
  return false;
#endif
}

bool cpu_has_avx512_vnni() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

const KernelTable* pick(const char* name) {
  if (std::strcmp(name, "generic") == 0) return &reference_kernels();
  if (std::strcmp(name, "avx2") == 0) {
    WREN_CHECK(avx2_kernels() != nullptr, UnsupportedError, "WRENLM_ISA=avx2: not compiled in");
    WREN_CHECK(cpu_has_avx2_fma(), UnsupportedError, "WRENLM_ISA=avx2: this CPU lacks AVX2/FMA/F16C");
    return avx2_kernels();
  }
  if (std::strcmp(name, "avx512") == 0) {
    WREN_CHECK(avx512_kernels() != nullptr, UnsupportedError, "WRENLM_ISA=avx512: not compiled in");
    WREN_CHECK(cpu_has_avx512_vnni(), UnsupportedError, "WRENLM_ISA=avx512: this CPU lacks AVX-512 F/BW/VL/VNNI");
    return avx512_kernels();
  }
  throw UnsupportedError(str_cat("unknown ISA '", name, "' (known: generic, avx2, avx512)"));
}

const KernelTable* best() {
  if (const char* env = std::getenv("WRENLM_ISA"); env && *env) return pick(env);
  if (avx512_kernels() && cpu_has_avx512_vnni()) return avx512_kernels();
  if (avx2_kernels() && cpu_has_avx2_fma()) return avx2_kernels();
  return &reference_kernels();
}

// Entries a table leaves null (no SIMD version on that ISA yet) fall back to the scalar twins.
KernelTable with_fallbacks(const KernelTable& t) {
  const KernelTable& r = reference_kernels();
  KernelTable c = t;
  if (!c.f32_to_f16) c.f32_to_f16 = r.f32_to_f16;
  if (!c.f16_to_f32) c.f16_to_f32 = r.f16_to_f32;
  if (!c.attn_scores_f16) c.attn_scores_f16 = r.attn_scores_f16;
  if (!c.attn_scores_f32) c.attn_scores_f32 = r.attn_scores_f32;
  if (!c.attn_values_f16) c.attn_values_f16 = r.attn_values_f16;
  if (!c.attn_values_f32) c.attn_values_f32 = r.attn_values_f32;
  if (!c.exp_sum) c.exp_sum = r.exp_sum;
  if (!c.dot_i8) c.dot_i8 = r.dot_i8;
  if (!c.rows_dot_f32) c.rows_dot_f32 = r.rows_dot_f32;
  if (!c.quantize_act) c.quantize_act = r.quantize_act;
  if (!c.silu_mul) c.silu_mul = r.silu_mul;
  if (!c.gelu_tanh_mul) c.gelu_tanh_mul = r.gelu_tanh_mul;
  return c;
}

KernelTable& current() {
  static KernelTable table = with_fallbacks(*best());
  return table;
}

}  // namespace

#if !defined(WRENLM_X86_KERNELS)
// Built for a CPU family without our SIMD kernel files: only the generic path exists.
const KernelTable* avx2_kernels() { return nullptr; }
const KernelTable* avx512_kernels() { return nullptr; }
#endif

const KernelTable& active_kernels() { return current(); }
bool isa_available(const char* name) {
  try {
    pick(name);
    return true;
  } catch (const UnsupportedError&) {
    return false;
  }
}
void select_kernels(const char* name) { current() = with_fallbacks(*pick(name)); }

}  // namespace wren
