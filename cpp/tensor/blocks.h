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
struct BlockQ2_K {  // 16 sub-blocks of 16: x = d * (sc & 15) * q - dmin * (sc >> 4), q 2 bits
  uint8_t scales[kQKK / 16];  // low nibble: scale, high nibble: min, of sub-block j
  uint8_t qs[kQKK / 4];       // 2 x 32 bytes; byte l of half h holds elements 128h + 32s + l at bits 2s
  uint16_t d;
  uint16_t dmin;
};
struct BlockQ3_K {  // 16 sub-blocks of 16: x = d * (sc - 32) * (q2 - (hbit ? 0 : 4))
  uint8_t hmask[kQKK / 8];    // bit i of byte l: high bit of element 32i + l
  uint8_t qs[kQKK / 4];       // low 2 bits, as Q2_K's qs
  uint8_t scales[12];         // 16 six-bit scales: low nibbles in bytes 0..7, high 2 bits in 8..11
  uint16_t d;
};
struct BlockQ4_K {  // 8 sub-blocks of 32 with 6-bit scales and mins
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQKK / 2];
};
struct BlockQ5_K {  // as Q4_K, with a fifth bit per element from qh
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQKK / 8];  // bit i of byte l: high bit of element 32i + l
  uint8_t qs[kQKK / 2];
};
struct BlockQ6_K {  // 16 sub-blocks of 16 with int8 scales; 6-bit quants split 4 + 2 bits
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};
struct BlockIQ4_NL {  // x = d * kIQ4Values[q], q 4 bits (nibbles as Q4_0)
  uint16_t d;
  uint8_t qs[kQK / 2];
};
struct BlockIQ4_XS {  // 8 sub-blocks of 32: x = d * (ls - 32) * kIQ4Values[q], ls 6 bits
  uint16_t d;
  uint16_t scales_h;        // high 2 bits of ls for sub-block j at bits 2j..2j+1
  uint8_t scales_l[kQKK / 64];  // low 4 bits of ls: sub-block 2i in the low nibble of byte i, 2i+1 in the high
  uint8_t qs[kQKK / 2];     // 16 bytes per sub-block, nibbles as Q4_0
};
#pragma pack(pop)

// The 16 signed levels of the non-linear 4-bit formats (IQ4_NL, IQ4_XS), as the GGUF spec fixes them.
constexpr int8_t kIQ4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 layout");
static_assert(sizeof(BlockQ4_1) == 20, "Q4_1 layout");
static_assert(sizeof(BlockQ5_0) == 22, "Q5_0 layout");
static_assert(sizeof(BlockQ5_1) == 24, "Q5_1 layout");
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 layout");
static_assert(sizeof(BlockQ2_K) == 84, "Q2_K layout");
static_assert(sizeof(BlockQ3_K) == 110, "Q3_K layout");
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K layout");
static_assert(sizeof(BlockQ5_K) == 176, "Q5_K layout");
static_assert(sizeof(BlockIQ4_NL) == 18, "IQ4_NL layout");
static_assert(sizeof(BlockIQ4_XS) == 136, "IQ4_XS layout");
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K layout");

// An activation vector quantized once per matmul: blocks of 32 int8 with a float scale, plus the
// block sums (scaled) that the offset formats (Q4_1, K-quants) need: of the whole block, and of its
// two 16-column halves (the K-quants with 16-column sub-blocks).
struct ActQ8 {
  float d;
  float sum;       // d * sum(qs)
  float half[2];   // d * sum(qs[0..16)), d * sum(qs[16..32))
  int8_t qs[kQK];
};

}  // namespace wren
