// Load-time re-layout of the quantized weight types for SIMD matrix products.
//
// In the file, each row is a run of blocks. Here rows are taken 16 at a time (a "group") and, for
// every tile of columns (one file block: 32 columns for Q4_0..Q8_0 and IQ4_NL, 256 for the K-quants
// and IQ4_XS), the group's 16 blocks are stored together. Inside a tile every weight is an unsigned
// integer u, laid out so that one 64-byte vector holds the same 4 columns of all 16 rows: a
// dot-product instruction that sums 4 byte products per 32-bit lane (VNNI vpdpbusd, or AVX2
// maddubs + madd) then accumulates row r of the group in lane r, with no horizontal reduction.
//
// A tile (16 rows x tile_cols columns):
//   uint16 d[16]                       fp16 scale of each row's block
//   uint16 dmin[16]                    has_min: fp16 offset scale of each row's block
//   int8   sc[tile_cols / sub_cols][16]   sub_cols: integer sub-block scales (row r in byte r)
//   uint8  m[tile_cols / sub_cols][16]    sub_min: integer sub-block offsets
//   then, for each 32-column sub-block j, the values u of columns 32j..32j+31 ("vector" k holds
//   columns 4k..4k+3; byte 4r+i of a vector is row r, column 4k+i):
//     kNibbles  4 x 64 bytes: chunk c, byte b: low nibble = vector c, high nibble = vector c+4
//     kCrumbs   2 x 64 bytes: chunk c, byte b, bits 2s..2s+1 = vector 4c+s
//     kBytes    8 x 64 bytes: vector k
//     planes    n_planes x 64 bytes: plane p, byte b, bit k = bit (plane_bit + p) of vector k's byte b;
//               or, with crumb_planes (two planes), 2 x 64 bytes: chunk c, byte b, bits 2s..2s+1 =
//               bits plane_bit..plane_bit+1 of vector 4c+s's byte b (one shift and one merge per vector)
//
// The weight is
//   w = S * (value(u) - center)              S = d * sc (or d without sub-scales)
//   w = S * value(u) + min_sign * dmin * m   has_min (m = 1 without sub-block offsets)
// where value(u) = u, or for the IQ4 formats (lut) kIQ4Values[u] + 128. With an 8-bit activation
// block (scale dx, integer sum sx, over the columns that share S) a row's dot product is
//   S * dx * sum(value(u) * qx) + O * dx * sx,   O = -center * S  or  min_sign * dmin * m,
// and ActQ8 carries dx * sx for whole 32-column blocks and for their 16-column halves.
// Rows past the end of the last group are zero (all scales 0) and never written out. The bytes
// per row are those of the file, plus (K-quants) the 6-bit scales stored as whole bytes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/blocks.h"
#include "tensor/dtype.h"

namespace wren {

constexpr int kPackRows = 16;

enum class PackBase : uint8_t { kNibbles, kCrumbs, kBytes };

// How one packable type is stored; pack_format() gives it, at compile time where kernels need it.
struct PackFormat {
  int tile_cols;     // columns per tile (= the file's block)
  PackBase base;     // how the low bits of u are stored
  int n_planes;      // extra one-bit planes on top of the base (0..2)
  int plane_bit;     // the bit of u the first plane sets (the second sets plane_bit + 1)
  bool lut;          // value(u) = kIQ4Values[u] + 128
  int center;        // subtracted from value(u) (types without has_min)
  bool has_min;      // a dmin per row and tile
  int min_sign;      // +1: w = S*u + dmin (Q4_1, Q5_1: dmin holds m); -1: w = S*u - dmin*m (K-quants)
  int sub_cols;      // columns per integer sub-scale (0: none, 16 or 32)
  bool sub_min;      // integer sub-block offsets m beside the sub-scales
  bool crumb_planes = false;  // two planes stored as 2-bit crumbs (see above)

  constexpr int bits() const {
    return (base == PackBase::kNibbles ? 4 : base == PackBase::kCrumbs ? 2 : 8) + n_planes;
  }
  constexpr int max_value() const { return lut ? 241 : (1 << bits()) - 1; }
  constexpr int n_sub() const { return sub_cols ? tile_cols / sub_cols : 0; }
  // Bytes of the values of one 32-column sub-block of a group.
  constexpr size_t sub_bytes() const {
    return static_cast<size_t>(base == PackBase::kNibbles ? 256 : base == PackBase::kCrumbs ? 128 : 512) +
           64u * static_cast<size_t>(n_planes);
  }
  // Header offsets: d at 0, dmin (has_min) at dmin_offset(), then the sub-scales and offsets.
  static constexpr size_t dmin_offset() { return 2 * kPackRows; }
  constexpr size_t sc_offset() const { return (has_min ? 2 : 1) * dmin_offset(); }
  constexpr size_t m_offset() const { return sc_offset() + 16u * static_cast<size_t>(n_sub()); }
  constexpr size_t header_bytes() const { return m_offset() + (sub_min ? 16u * static_cast<size_t>(n_sub()) : 0u); }
  constexpr size_t tile_bytes() const { return header_bytes() + static_cast<size_t>(tile_cols / kQK) * sub_bytes(); }
};

// The packed format of t; tile_cols == 0 when t is not packable.
constexpr PackFormat pack_format(DType t) {
  using B = PackBase;
  switch (t) {
    //                     cols  base         planes bit lut   center min    sign  sub  sub_min
    case DType::Q4_0: return {32, B::kNibbles, 0, 0, false, 8, false, 0, 0, false};
    case DType::Q4_1: return {32, B::kNibbles, 0, 0, false, 0, true, 1, 0, false};
    case DType::Q5_0: return {32, B::kNibbles, 1, 4, false, 16, false, 0, 0, false};
    case DType::Q5_1: return {32, B::kNibbles, 1, 4, false, 0, true, 1, 0, false};
    case DType::Q8_0: return {32, B::kBytes, 0, 0, false, 128, false, 0, 0, false};
    case DType::IQ4_NL: return {32, B::kNibbles, 0, 0, true, 128, false, 0, 0, false};
    case DType::Q2_K: return {256, B::kCrumbs, 0, 0, false, 0, true, -1, 16, true};
    case DType::Q3_K: return {256, B::kCrumbs, 1, 2, false, 4, false, 0, 16, false};
    case DType::Q4_K: return {256, B::kNibbles, 0, 0, false, 0, true, -1, 32, true};
    case DType::Q5_K: return {256, B::kNibbles, 1, 4, false, 0, true, -1, 32, true};
    case DType::Q6_K: return {256, B::kNibbles, 2, 4, false, 32, false, 0, 16, false, true};
    case DType::IQ4_XS: return {256, B::kNibbles, 0, 0, true, 128, false, 0, 32, false};
    case DType::TQ2_0: return {256, B::kCrumbs, 0, 0, false, 1, false, 0, 0, false};
    default: return {0, B::kNibbles, 0, 0, false, 0, false, 0, 0, false};
  }
}

// Every packable type, for switches that instantiate a kernel per type.
#define WREN_FOR_PACKED_TYPES(X) \
  X(Q4_0) X(Q4_1) X(Q5_0) X(Q5_1) X(Q8_0) X(IQ4_NL) X(Q2_K) X(Q3_K) X(Q4_K) X(Q5_K) X(Q6_K) X(IQ4_XS) X(TQ2_0)

// The few-token SIMD kernels (kernels/avx2, avx512: batched decode) prefetch, for each tile they
// read from memory, the bytes kPrefetchAhead past it, in the group that comes next. With several
// tokens per weight byte, the out-of-order window covers too little of the weight stream to keep
// DRAM busy; this overlaps the next loads with the current tile's work. 4 KiB measured best on
// Zen 4 (2 and 8 KiB within a few percent); decode (one token) gains nothing, so does not use it.
constexpr size_t kPrefetchAhead = 4096;

namespace {  // internal linkage: called from files built with different -m flags
inline void prefetch_ahead(const uint8_t* tile, size_t tile_bytes) {
  for (size_t o = 0; o < tile_bytes; o += 64) __builtin_prefetch(tile + kPrefetchAhead + o, 0, 3);
}
}  // namespace

// True for the types that are re-laid out (those with a pack_format).
inline bool packable(DType t) { return pack_format(t).tile_cols != 0; }

// A packed weight matrix (rows x cols), cols a multiple of the type's tile_cols.
struct PackedMatrix {
  DType dtype = DType::Q4_0;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* data = nullptr;
  int64_t n_groups = 0;     // ceil(rows / 16)
  int64_t n_tiles = 0;      // cols / tile_cols
  size_t tile_bytes = 0;    // one group x one tile
  size_t header_bytes = 0;  // scales at the start of each tile

  const uint8_t* tile(int64_t group, int64_t t) const {
    return data + (static_cast<size_t>(group) * static_cast<size_t>(n_tiles) + static_cast<size_t>(t)) * tile_bytes;
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

// The stored u of row r (0..15), column e (0..31) of a sub-block whose values start at q.
inline unsigned packed_u(const PackFormat& f, const uint8_t* q, int r, int e) {
  const int k = e / 4, at = 4 * r + e % 4;
  unsigned u;
  if (f.base == PackBase::kNibbles)
    u = k < 4 ? q[64 * k + at] & 0x0fu : q[64 * (k - 4) + at] >> 4u;
  else if (f.base == PackBase::kCrumbs)
    u = (q[64 * (k / 4) + at] >> (2 * (k % 4))) & 3u;
  else
    u = q[64 * k + at];
  const uint8_t* planes = q + f.sub_bytes() - 64u * static_cast<size_t>(f.n_planes);
  if (f.crumb_planes) return u | ((planes[64 * (k / 4) + at] >> (2 * (k % 4))) & 3u) << f.plane_bit;
  for (int p = 0; p < f.n_planes; ++p) u |= ((planes[64 * p + at] >> k) & 1u) << (f.plane_bit + p);
  return u;
}

// value(u) of the formula above.
inline int packed_value(const PackFormat& f, unsigned u) { return f.lut ? kIQ4Values[u] + 128 : static_cast<int>(u); }

// Per-row scale S and offset O (w = S * value(u) + O) of row r for the 16 columns starting at
// column `col` of a tile.
void packed_scale_offset(const PackFormat& f, const uint8_t* tile, int r, int col, float* s, float* o);

// Dequantizes nb file blocks of a packable type t (no packing needed): the same decoding and formula
// as the packed copy, so both give identical floats.
void dequantize_file_blocks(DType t, const void* src, float* dst, size_t nb);

// Dequantizes rows [r0, r0 + count) into out (count x cols floats).
void dequantize_packed_rows(const PackedMatrix& w, int64_t r0, int64_t count, float* out);

}  // namespace wren
