// The codebooks of the I-quant formats (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S): format
// constants, generated from gguf-py by tools/gen_iq_tables.py into iq_tables.inc.
//
// A grid entry holds the magnitudes of 8 (IQ1, IQ2) or 4 (IQ3) consecutive weights, weight j in byte j
// of the integer (bits 8j..8j+7), so a little-endian load of the entry gives the weights in order:
//   kIQ2*Grid  8, 25 or 43;   kIQ3XXSGrid  4, 12, 20, 28, 36, 44, 52, 62;   kIQ3SGrid  1, 3, ..., 15;
//   kIQ1SGrid  int8 -1, 0, +1 (bytes 0xff, 0x00, 0x01).
// kIQ2Signs[i] (i < 128): bit j set = weight j of the 8 is negative; bits 0..6 equal i and bit 7 makes
// the number of set bits even, so 7 stored bits give 8 signs.
#pragma once

#include <cstdint>

namespace wren {

extern const uint64_t kIQ2XXSGrid[256];
extern const uint64_t kIQ2XSGrid[512];
extern const uint64_t kIQ2SGrid[1024];
extern const uint32_t kIQ3XXSGrid[256];
extern const uint32_t kIQ3SGrid[512];
extern const uint64_t kIQ1SGrid[2048];  // IQ1_S and IQ1_M
extern const uint8_t kIQ2Signs[128];    // IQ2_XXS, IQ2_XS, IQ3_XXS

// Weight j of a grid entry: its byte j (unsigned; kIQ1SGrid's are int8).
inline uint8_t grid_byte(uint64_t entry, int j) { return static_cast<uint8_t>(entry >> (8 * j)); }

}  // namespace wren
