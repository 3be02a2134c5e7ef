// Load-time re-layout of the 32-element block formats (Q4_0, Q4_1, Q8_0) for SIMD matrix products.
//
// In the file, each row is a run of blocks. Here rows are taken 16 at a time (a "group") and, for
// every block column b, the group's 16 blocks are stored together so that one 64-byte vector holds
// the same 4 columns of all 16 rows: a dot-product instruction that sums 4 byte products per 32-bit
// lane (VNNI vpdpbusd, or AVX2 maddubs + madd) then accumulates row r of the group in lane r, with
// no horizontal reduction. Per group and block column ("tile"):
//
//   uint16 d[16]                 fp16 scale of each row's block
//   uint16 m[16]                 Q4_1 only: fp16 offset of each row's block
//   uint8  q[16 * 32 / 2]        Q4_0/Q4_1: chunk c (0..3) = 64 bytes; bytes 4r..4r+3 are row r's
//                                file bytes qs[4c..4c+3], i.e. low nibbles = columns 4c..4c+3 and
//                                high nibbles = columns 16+4c..16+4c+3 (unsigned 0..15)
//   uint8  q[16 * 32]            Q8_0: chunk c (0..7) = 64 bytes; bytes 4r..4r+3 are row r's
//                                columns 4c..4c+3 stored as q + 128 (unsigned 0..255)
//
// Every element is then  w = d * u + mw  with u the stored unsigned value and
//   Q4_0: mw = -8 d,   Q4_1: mw = m,   Q8_0: mw = -128 d,
// so a row's dot product with an 8-bit activation block (scale dx, integer sum sx) is
//   d * dx * sum(u * qx) + mw * dx * sx     (ActQ8::sum already holds dx * sx).
// Rows past the end of the last group are zero (d = m = 0) and never written out.
// The bytes per row are exactly those of the file, so memory traffic does not grow.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"

namespace wren {

constexpr int kPackRows = 16;

// True for the types that are re-laid out (Q4_0, Q4_1, Q8_0).
bool packable(DType t);

// A packed weight matrix (rows x cols), cols a multiple of 32.
struct PackedMatrix {
  DType dtype = DType::Q4_0;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* data = nullptr;
  int64_t n_groups = 0;    // ceil(rows / 16)
  int64_t n_blocks = 0;    // cols / 32
  size_t tile_bytes = 0;   // one group x one block column
  size_t scale_bytes = 0;  // d (and m) at the start of each tile

  const uint8_t* tile(int64_t group, int64_t block) const {
    return data + (static_cast<size_t>(group) * static_cast<size_t>(n_blocks) + static_cast<size_t>(block)) * tile_bytes;
  }
};

// The layout of a rows x cols matrix of type t (data left null). t must be packable.
PackedMatrix packed_layout(DType t, int64_t rows, int64_t cols);
// Bytes the packed copy of such a matrix occupies.
size_t packed_bytes(const PackedMatrix& layout);

// Re-lays out rows [g0*16, g1*16) of a file-order matrix (rows `src_stride` bytes apart) into dst
// (packed_bytes(layout) bytes, written for groups g0..g1-1 only, so groups can be packed in parallel).
void pack_groups(const PackedMatrix& layout, const uint8_t* src, size_t src_stride, int64_t g0, int64_t g1,
                 uint8_t* dst);

// The stored unsigned value of row r (0..15), element e (0..31) of a tile whose quants start at q.
inline unsigned packed_quant(DType t, const uint8_t* q, int r, int e) {
  if (t == DType::Q8_0) return q[64 * (e / 4) + 4 * r + e % 4];
  const int col = e % 16;  // elements e and e + 16 share a byte: low and high nibble
  const uint8_t byte = q[64 * (col / 4) + 4 * r + col % 4];
  return e < 16 ? byte & 0x0fu : byte >> 4u;
}

// The offset mw of the formula w = d * u + mw, from a block's scale d and (Q4_1) offset m.
inline float packed_offset(DType t, float d, float m) {
  return t == DType::Q4_0 ? -8.f * d : t == DType::Q8_0 ? -128.f * d : m;
}

// Dequantizes rows [r0, r0 + count) into out (count x cols floats).
void dequantize_packed_rows(const PackedMatrix& w, int64_t r0, int64_t count, float* out);

}  // namespace wren
