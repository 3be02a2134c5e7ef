// Dequantizers of the codebook formats that are not packed for the kernels: the lattice-grid I-quants
// (IQ4_NL/IQ4_XS decode through tensor/packed.cpp), the
// ternary formats and the 4-bit floats. Internal to tensor/: dequantize_row (quant.h) dispatches here.
// Each writes nb blocks (block_size weights each, see dtype.cpp) to y, computing every weight in float32
// in the order gguf-py's numpy dequantizers do, so both agree to the last bit or so.
#pragma once

#include <cstddef>

#include "tensor/blocks.h"

namespace wren {

void dequant_iq2_xxs(const BlockIQ2_XXS* b, float* y, size_t nb);
void dequant_iq2_xs(const BlockIQ2_XS* b, float* y, size_t nb);
void dequant_iq2_s(const BlockIQ2_S* b, float* y, size_t nb);
void dequant_iq3_xxs(const BlockIQ3_XXS* b, float* y, size_t nb);
void dequant_iq3_s(const BlockIQ3_S* b, float* y, size_t nb);
void dequant_iq1_s(const BlockIQ1_S* b, float* y, size_t nb);
void dequant_iq1_m(const BlockIQ1_M* b, float* y, size_t nb);
void dequant_tq1_0(const BlockTQ1_0* b, float* y, size_t nb);
void dequant_tq2_0(const BlockTQ2_0* b, float* y, size_t nb);
void dequant_mxfp4(const BlockMXFP4* b, float* y, size_t nb);
void dequant_nvfp4(const BlockNVFP4* b, float* y, size_t nb);

}  // namespace wren
