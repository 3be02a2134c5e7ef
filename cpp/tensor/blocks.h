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

// The grid formats. Each run of 8 (IQ2, IQ1) or 4 (IQ3) weights is an index into a codebook of
// magnitude patterns (tensor/iq_tables.h); "entry" i below is weights 8i..8i+7 (IQ3: 4i..4i+3).
struct BlockIQ2_XXS {  // 8 groups of 32: x = d * (0.5 + ls) * 0.25 * kIQ2XXSGrid[idx] * sign
  uint16_t d;
  uint8_t qs[kQKK / 4];  // group g: bytes 8g..8g+3 = grid index of entries 4g..4g+3; bytes 8g+4..8g+7 =
                         // uint32 w: bits 7k..7k+6 = kIQ2Signs index of entry 4g+k, bits 28..31 = ls
};
struct BlockIQ2_XS {  // 16 groups of 16: x = d * (0.5 + ls) * 0.25 * kIQ2XSGrid[idx] * sign
  uint16_t d;
  uint16_t qs[kQKK / 8];       // entry i: bits 0..8 = grid index (512), bits 9..15 = kIQ2Signs index
  uint8_t scales[kQKK / 32];   // ls of entries 4j, 4j+1 in the low nibble of byte j; 4j+2, 4j+3 high
};
struct BlockIQ2_S {  // 16 groups of 16: x = d * (0.5 + ls) * 0.25 * kIQ2SGrid[idx] * sign
  uint16_t d;
  uint8_t qs[kQKK / 8];       // entry i: low 8 bits of the grid index (1024)
  uint8_t signs[kQKK / 8];    // entry i: bit j set = weight j negative (no sign table)
  uint8_t qh[kQKK / 32];      // bits 2k..2k+1 of byte j: index bits 8..9 of entry 4j + k
  uint8_t scales[kQKK / 32];  // as IQ2_XS
};
struct BlockIQ3_XXS {  // 8 groups of 32: x = d * (0.5 + ls) * 0.5 * kIQ3XXSGrid[idx] * sign
  uint16_t d;
  uint8_t qs[kQKK / 4];     // entry i (4 weights): grid index (256)
  uint8_t sas[kQKK / 8];    // group g: uint32 at 4g: bits 7k..7k+6 = kIQ2Signs index of weights
                            // 32g+8k..32g+8k+7 (entries 8g+2k, 8g+2k+1), bits 28..31 = ls
};
struct BlockIQ3_S {  // 8 groups of 32: x = d * (1 + 2 * ls) * kIQ3SGrid[idx] * sign
  uint16_t d;
  uint8_t qs[kQKK / 4];      // entry i (4 weights): low 8 bits of the grid index (512)
  uint8_t qh[kQKK / 32];     // bit b of byte j: index bit 8 of entry 8j + b
  uint8_t signs[kQKK / 8];   // bit b of byte j: weight 8j + b negative
  uint8_t scales[kQKK / 64]; // ls of group 2j in the low nibble of byte j, 2j+1 in the high
};
struct BlockIQ1_S {  // 8 groups of 32: x = d * (2 * ls + 1) * (kIQ1SGrid[idx] + delta), grid in {-1, 0, 1}
  uint16_t d;
  uint8_t qs[kQKK / 8];     // entry i: low 8 bits of the grid index (2048)
  uint16_t qh[kQKK / 32];   // group g: bits 3k..3k+2 = index bits 8..10 of entry 4g+k, bits 12..14 = ls,
                            // bit 15 set: delta = -0.125, else +0.125
};
struct BlockIQ1_M {  // 16 groups of 16: x = d * (2 * ls + 1) * (kIQ1SGrid[idx] + delta)
  uint8_t qs[kQKK / 8];      // entry i: low 8 bits of the grid index (kIQ1SGrid, 2048)
  uint8_t qh[kQKK / 16];     // entry 2j (low nibble of byte j), 2j+1 (high): bits 0..2 = index bits
                             // 8..10, bit 3 set: delta = -0.125, else +0.125
  uint16_t scales[4];        // ls of group 4w+k at bits 3k..3k+2 of word w; bits 12..15 of word w =
                             // bits 4w..4w+3 of the fp16 d (no separate d field)
};

// Ternary formats: x = d * t, t in {-1, 0, 1}.
struct BlockTQ1_0 {  // 5 (qh: 4) ternary digits per byte; digit k of byte v is ((v * 3^k mod 256) * 3) >> 8
  uint8_t qs[(kQKK - 4 * kQKK / 64) / 5];  // bytes 0..31: weight 32k + l = digit k of byte l (k 0..4);
                                           // bytes 32..47: weight 160 + 16k + l = digit k of byte 32 + l
  uint8_t qh[kQKK / 64];                   // weight 240 + 4k + l = digit k of qh[l] (k 0..3)
  uint16_t d;                              // t = digit - 1
};
struct BlockTQ2_0 {  // 2 bits per weight: t = q - 1, q as Q2_K's qs (weight 128h + 32s + l at bits 2s of byte 32h + l)
  uint8_t qs[kQKK / 4];
  uint16_t d;
};

// 4-bit floats (E2M1) with a shared scale: x = scale * kFP4Values[q], nibbles as Q4_0.
struct BlockMXFP4 {  // 32 weights; scale = 2^(e - 128) (E8M0 exponent, halved as kFP4Values are doubled)
  uint8_t e;
  uint8_t qs[kQK / 2];
};
struct BlockNVFP4 {  // 4 sub-blocks of 16; scale = UE4M3 d[s] / 2 (0 for the byte 0x7f)
  uint8_t d[4];      // unsigned E4M3: exponent bits 3..6 (bias 7, 0 = subnormal), mantissa bits 0..2
  uint8_t qs[32];    // sub-block s: bytes 8s..8s+7, low nibbles weights 0..7, high nibbles 8..15
};
#pragma pack(pop)

// The 16 signed levels of the non-linear 4-bit formats (IQ4_NL, IQ4_XS), as the GGUF spec fixes them.
constexpr int8_t kIQ4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
// The E2M1 4-bit float values doubled (0, 0.5, 1, 1.5, 2, 3, 4, 6 times 2; bit 3 is the sign), for
// MXFP4 and NVFP4, whose scales are halved to match.
constexpr int8_t kFP4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

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
static_assert(sizeof(BlockIQ2_XXS) == 66, "IQ2_XXS layout");
static_assert(sizeof(BlockIQ2_XS) == 74, "IQ2_XS layout");
static_assert(sizeof(BlockIQ2_S) == 82, "IQ2_S layout");
static_assert(sizeof(BlockIQ3_XXS) == 98, "IQ3_XXS layout");
static_assert(sizeof(BlockIQ3_S) == 110, "IQ3_S layout");
static_assert(sizeof(BlockIQ1_S) == 50, "IQ1_S layout");
static_assert(sizeof(BlockIQ1_M) == 56, "IQ1_M layout");
static_assert(sizeof(BlockTQ1_0) == 54, "TQ1_0 layout");
static_assert(sizeof(BlockTQ2_0) == 66, "TQ2_0 layout");
static_assert(sizeof(BlockMXFP4) == 17, "MXFP4 layout");
static_assert(sizeof(BlockNVFP4) == 36, "NVFP4 layout");

// An activation vector quantized once per matmul: blocks of 32 int8 with a float scale, plus the
// block sums (scaled) that the offset formats (Q4_1, K-quants) need: of the whole block, and of its
// two 16-column halves (the K-quants with 16-column sub-blocks); and the halves' integer sums, with
// which a kernel can subtract a centered format's center * sum inside its integer dot product.
struct ActQ8 {
  float d;
  float sum;         // d * sum(qs)
  float half[2];     // d * sum(qs[0..16)), d * sum(qs[16..32))
  int32_t isum[2];   // sum(qs[0..16)), sum(qs[16..32))
  int8_t qs[kQK];
};

}  // namespace wren
