// Quantization of float rows into the GGUF block formats: the inverse of dequantize_row (quant.h).
//
// Two families:
//  - the "round-trip" formats (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) have one obvious encoding
//    per block (a scale from the block's extremes, then rounding); we reproduce gguf-py's numpy
//    quantizer bit for bit, including its rounding and its fp16 conversion of the scales;
//  - the K-quants (Q2_K..Q6_K) and IQ4_NL / IQ4_XS have scales worth searching for: each sub-block's
//    scale (and offset) is chosen to minimise the squared error of the dequantized values, then the
//    sub-block scales are themselves quantized and every weight re-rounded with the stored scales
//    (tensor/quantize_search.cpp).
#pragma once

#include <cstddef>
#include <string>

#include "tensor/dtype.h"

namespace wren {

// True when quantize_row can write type t.
bool can_quantize(DType t);
// Comma-separated list of those types (for error messages).
std::string quantizable_dtypes();

// Writes the n floats of src as one row of type t at dst (row_bytes(t, n) bytes). n must be a multiple
// of t's block size and the values finite (InvalidArgument otherwise; UnsupportedError for a type
// can_quantize rejects).
void quantize_row(DType t, const float* src, void* dst, size_t n);

// The search-based formats, one block each (quantize_search.cpp); x holds the block's elements.
void quantize_block_q2_k(const float* x, void* dst);
void quantize_block_q3_k(const float* x, void* dst);
void quantize_block_q4_k(const float* x, void* dst);
void quantize_block_q5_k(const float* x, void* dst);
void quantize_block_q6_k(const float* x, void* dst);
void quantize_block_iq4_nl(const float* x, void* dst);
void quantize_block_iq4_xs(const float* x, void* dst);

}  // namespace wren
