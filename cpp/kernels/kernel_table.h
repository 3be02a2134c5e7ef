// Per-ISA kernel tables. reference.cpp holds the scalar twins (also the fallback on unknown CPUs);
// avx2/ and avx512/ hold SIMD versions of the same signatures. dispatch.cpp picks one at start-up
// from CPUID, or from WRENLM_ISA=generic|avx2|avx512 to force a path.
#pragma once

#include <cstdint>

#include "tensor/blocks.h"
#include "tensor/dtype.h"
#include "tensor/packed.h"

namespace wren {

// Products of a packed weight matrix (tensor/packed.h) with n activation vectors quantized to ActQ8:
//   y[t * ldy + r] = w[r] . x_t   for the rows r of groups [g0, g1) and tokens t in [0, n),
// where x_t = x + t * x_stride holds w.cols / 32 blocks. n == 1 is decode's matrix x vector.
using GemmPackedFn = void (*)(const PackedMatrix& w, int64_t g0, int64_t g1, const ActQ8* x, int64_t x_stride,
                              int64_t n, float* y, int64_t ldy);
// Dot product of one float-typed weight row (F32/F16/BF16) with a float activation.
using DotF32Fn = float (*)(const void* row, const float* x, int64_t n);

struct KernelTable {
  const char* name;
  GemmPackedFn gemm_packed;  // Q4_0, Q4_1, Q8_0
  DotF32Fn dot_f32;
  DotF32Fn dot_f16;
};

const KernelTable& reference_kernels();
const KernelTable* avx2_kernels();    // nullptr when not compiled in
const KernelTable* avx512_kernels();  // AVX-512 F/BW/VL + VNNI; nullptr when not compiled in
const KernelTable& active_kernels();  // chosen once
// Whether the named table is compiled in and this CPU can run it.
bool isa_available(const char* name);
// Selects a table by name ("generic", "avx2", "avx512"); throws UnsupportedError if the CPU lacks it.
void select_kernels(const char* name);

}  // namespace wren
