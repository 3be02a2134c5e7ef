// Tensor element types, numbered as GGUF/ggml numbers them, with their block layouts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace wren {

enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  NVFP4 = 40,
  Q1_0 = 41,
};

struct DTypeInfo {
  const char* name;
  uint32_t block_size;  // elements per block (1 for plain types)
  uint32_t type_size;   // bytes per block
  bool supported;       // we can dequantize and multiply it
};

// nullptr when the id is not a ggml type we know how to size.
const DTypeInfo* dtype_info(uint32_t id);
const DTypeInfo& dtype_info(DType t);
inline const char* dtype_name(DType t) { return dtype_info(t).name; }
// Comma-separated list of the types we can compute with (for error messages).
std::string supported_dtypes();

// Bytes of one row of n elements; n must be a multiple of the block size.
inline size_t row_bytes(DType t, size_t n) {
  const DTypeInfo& i = dtype_info(t);
  return n / i.block_size * i.type_size;
}

}  // namespace wren
