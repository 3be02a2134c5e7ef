// Byte layouts of the quantized blocks, as the GGUF format stores them (little-endian).
#pragma once

#include <cstdint>

namespace wren {

constexpr int kQK = 32;    // elements per block of the legacy formats
constexpr int kQKK = 256;  // elements per super-block of the K formats

#pragma pack(push, 1)
struct BlockQ4_0 {  // x = (q - 8) * d
  uint16_t d;            // fp16 scale
  uint8_t qs[kQK / 2];   // low nibbles: elements 0..15, high nibbles: 16..31
};
struct BlockQ4_1 {  // x = q * d + m
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK / 2];
};
struct BlockQ5_0 {  // x = (q - 16) * d, q = 4 low bits from qs | 1 high bit from qh
  uint16_t d;
  uint8_t qh[4];        // bit j: high bit of element j (little-endian 32 bits)
  uint8_t qs[kQK / 2];  // low nibbles: elements 0..15, high nibbles: 16..31
};
struct BlockQ5_1 {  // x = q * d + m, q as in Q5_0
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct BlockQ8_0 {  // x = q * d
  uint16_t d;
  int8_t qs[kQK];
};
struct BlockQ4_K {  // 8 sub-blocks of 32 with 6-bit scales and mins
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQKK / 2];
};
struct BlockQ6_K {  // 16 sub-blocks of 16 with int8 scales; 6-bit quants split 4 + 2 bits
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};
#pragma pack(pop)

static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 layout");
static_assert(sizeof(BlockQ4_1) == 20, "Q4_1 layout");
static_assert(sizeof(BlockQ5_0) == 22, "Q5_0 layout");
static_assert(sizeof(BlockQ5_1) == 24, "Q5_1 layout");
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 layout");
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K layout");
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K layout");

// An activation vector quantized once per matmul: blocks of 32 int8 with a float scale, plus the
// block sum (scaled) that the offset formats (Q4_1, Q4_K) need.
struct ActQ8 {
  float d;
  float sum;  // d * sum(qs)
  int8_t qs[kQK];
};

}  // namespace wren
