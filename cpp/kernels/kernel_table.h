// Per-ISA kernel tables. reference.cpp holds the scalar twins (also the fallback on unknown CPUs);
// avx2/ and avx512/ hold SIMD versions of the same signatures. dispatch.cpp picks one at start-up
// from CPUID, or from WRENLM_ISA=generic|avx2|avx512 to force a path.
#pragma once

#include <cstdint>

#include "tensor/blocks.h"
#include "tensor/dtype.h"

namespace wren {

// Dot product of one quantized weight row (n elements) with an activation quantized to ActQ8.
using DotQ8Fn = float (*)(const void* row, const ActQ8* x, int64_t n);
// Dot product of one float-typed weight row (F32/F16/BF16) with a float activation.
using DotF32Fn = float (*)(const void* row, const float* x, int64_t n);

struct KernelTable {
  const char* name;
  DotQ8Fn dot_q4_0;
  DotQ8Fn dot_q4_1;
  DotQ8Fn dot_q8_0;
  DotF32Fn dot_f32;
  DotF32Fn dot_f16;
};

const KernelTable& reference_kernels();
const KernelTable* avx2_kernels();    // nullptr when not compiled in
const KernelTable& active_kernels();  // chosen once
// Selects a table by name ("generic", "avx2", "avx512"); throws UnsupportedError if the CPU lacks it.
void select_kernels(const char* name);

}  // namespace wren
