#include "tensor/packed.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "tensor/fp16.h"
#include "util/errors.h"

namespace wren {

PackedMatrix packed_layout(DType t, int64_t rows, int64_t cols) {
  const PackFormat f = pack_format(t);
  WREN_CHECK(f.tile_cols != 0, InvalidArgument, "packed_layout: ", dtype_name(t), " is not a packable type");
  WREN_CHECK(rows > 0 && cols > 0 && cols % f.tile_cols == 0, InvalidArgument, "packed_layout: bad shape ", rows, "x",
             cols, " for ", dtype_name(t));
  PackedMatrix p;
  p.dtype = t;
  p.rows = rows;
  p.cols = cols;
  p.n_groups = (rows + kPackRows - 1) / kPackRows;
  p.n_tiles = cols / f.tile_cols;
  p.header_bytes = f.header_bytes();
  p.tile_bytes = f.tile_bytes();
  return p;
}

size_t packed_bytes(const PackedMatrix& p) {
  return static_cast<size_t>(p.n_groups) * static_cast<size_t>(p.n_tiles) * p.tile_bytes;
}

namespace {

// One row's file block, decoded: its values u in column order and its scales.
struct DecodedBlock {
  uint16_t d = 0, dmin = 0;  // fp16 bits
  int8_t sc[16] = {};        // per sub_cols columns
  uint8_t m[16] = {};
  uint8_t u[kQKK];
};

inline uint32_t le32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Nibbles in the legacy order: byte j holds element j (low) and element j + 16 (high).
inline void split_nibbles(const uint8_t* qs, uint8_t* u) {
  for (int j = 0; j < kQK / 2; ++j) {
    u[j] = qs[j] & 0x0f;
    u[j + kQK / 2] = qs[j] >> 4;
  }
}

// Q4_K / Q5_K: 8 six-bit scales and mins in 12 bytes.
inline void k_scale_min(const uint8_t* s, int j, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// Q2_K / Q3_K low bits: element 128h + 32s + l is bits 2s..2s+1 of byte 32h + l.
inline void split_crumbs(const uint8_t* qs, uint8_t* u) {
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s)
      for (int l = 0; l < 32; ++l) u[128 * h + 32 * s + l] = (qs[32 * h + l] >> (2 * s)) & 3;
}

template <DType T>
void decode_block(const uint8_t* src, DecodedBlock& b) {
  if constexpr (T == DType::Q4_0 || T == DType::IQ4_NL) {
    const auto* blk = reinterpret_cast<const BlockQ4_0*>(src);  // IQ4_NL: same bytes, indices for nibbles
    b.d = blk->d;
    split_nibbles(blk->qs, b.u);
  } else if constexpr (T == DType::Q4_1) {
    const auto* blk = reinterpret_cast<const BlockQ4_1*>(src);
    b.d = blk->d;
    b.dmin = blk->m;
    split_nibbles(blk->qs, b.u);
  } else if constexpr (T == DType::Q5_0 || T == DType::Q5_1) {
    using Block = std::conditional_t<T == DType::Q5_0, BlockQ5_0, BlockQ5_1>;
    const auto* blk = reinterpret_cast<const Block*>(src);
    b.d = blk->d;
    if constexpr (T == DType::Q5_1) b.dmin = blk->m;
    split_nibbles(blk->qs, b.u);
    const uint32_t high = le32(blk->qh);
    for (int j = 0; j < kQK; ++j) b.u[j] |= static_cast<uint8_t>(((high >> j) & 1u) << 4);
  } else if constexpr (T == DType::Q8_0) {
    const auto* blk = reinterpret_cast<const BlockQ8_0*>(src);
    b.d = blk->d;
    for (int j = 0; j < kQK; ++j) b.u[j] = static_cast<uint8_t>(blk->qs[j] + 128);
  } else if constexpr (T == DType::Q4_K || T == DType::Q5_K) {
    using Block = std::conditional_t<T == DType::Q4_K, BlockQ4_K, BlockQ5_K>;
    const auto* blk = reinterpret_cast<const Block*>(src);
    b.d = blk->d;
    b.dmin = blk->dmin;
    const uint8_t* scales = blk->scales;
    const uint8_t* qs = blk->qs;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      k_scale_min(scales, j, &sc, &m);
      b.sc[j] = static_cast<int8_t>(sc);
      b.m[j] = m;
    }
    // Sub-blocks 2p and 2p+1 share 32 bytes: low nibbles, then high nibbles.
    for (int p = 0; p < 4; ++p)
      for (int l = 0; l < 32; ++l) {
        b.u[64 * p + l] = qs[32 * p + l] & 0x0f;
        b.u[64 * p + 32 + l] = qs[32 * p + l] >> 4;
      }
    if constexpr (T == DType::Q5_K) {
      for (int i = 0; i < 8; ++i)
        for (int l = 0; l < 32; ++l) b.u[32 * i + l] |= static_cast<uint8_t>(((blk->qh[l] >> i) & 1) << 4);
    }
  } else if constexpr (T == DType::Q6_K) {
    const auto* blk = reinterpret_cast<const BlockQ6_K*>(src);
    b.d = blk->d;
    for (int j = 0; j < 16; ++j) b.sc[j] = blk->scales[j];
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = blk->ql + 64 * h;
      const uint8_t* qh = blk->qh + 32 * h;
      uint8_t* u = b.u + 128 * h;
      for (int l = 0; l < 32; ++l) {
        u[l] = static_cast<uint8_t>((ql[l] & 0x0f) | ((qh[l] & 3) << 4));
        u[l + 32] = static_cast<uint8_t>((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4));
        u[l + 64] = static_cast<uint8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
        u[l + 96] = static_cast<uint8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
      }
    }
  } else if constexpr (T == DType::Q3_K) {
    const auto* blk = reinterpret_cast<const BlockQ3_K*>(src);
    b.d = blk->d;
    for (int j = 0; j < 16; ++j) {
      const int low = (blk->scales[j % 8] >> (4 * (j / 8))) & 0x0f;
      const int high = (blk->scales[8 + j % 4] >> (2 * (j / 4))) & 3;
      b.sc[j] = static_cast<int8_t>((low | high << 4) - 32);
    }
    split_crumbs(blk->qs, b.u);
    // A set high bit means "no -4": u = low + 4 * bit, and the center is 4.
    for (int i = 0; i < 8; ++i)
      for (int l = 0; l < 32; ++l) b.u[32 * i + l] |= static_cast<uint8_t>(((blk->hmask[l] >> i) & 1) << 2);
  } else if constexpr (T == DType::Q2_K) {
    const auto* blk = reinterpret_cast<const BlockQ2_K*>(src);
    b.d = blk->d;
    b.dmin = blk->dmin;
    for (int j = 0; j < 16; ++j) {
      b.sc[j] = static_cast<int8_t>(blk->scales[j] & 0x0f);
      b.m[j] = blk->scales[j] >> 4;
    }
    split_crumbs(blk->qs, b.u);
  } else if constexpr (T == DType::TQ2_0) {  // ternary: w = d * (u - 1)
    const auto* blk = reinterpret_cast<const BlockTQ2_0*>(src);
    b.d = blk->d;
    split_crumbs(blk->qs, b.u);
  } else if constexpr (T == DType::IQ4_XS) {
    const auto* blk = reinterpret_cast<const BlockIQ4_XS*>(src);
    b.d = blk->d;
    for (int j = 0; j < 8; ++j) {
      const int low = (blk->scales_l[j / 2] >> (4 * (j % 2))) & 0x0f;
      const int high = (blk->scales_h >> (2 * j)) & 3;
      b.sc[j] = static_cast<int8_t>((low | high << 4) - 32);
    }
    for (int j = 0; j < 8; ++j) split_nibbles(blk->qs + 16 * j, b.u + 32 * j);
  }
}

// Writes row r's decoded block into its tile (the layout in packed.h). Every byte of the row is
// assigned (no read-modify-write), so only a partial last group needs its tile cleared first.
template <DType T>
void write_row(const DecodedBlock& b, int r, uint8_t* tile) {
  constexpr PackFormat f = pack_format(T);
  std::memcpy(tile + 2 * r, &b.d, 2);
  if constexpr (f.has_min) std::memcpy(tile + PackFormat::dmin_offset() + 2 * r, &b.dmin, 2);
  for (int s = 0; s < f.n_sub(); ++s) {
    tile[f.sc_offset() + 16 * static_cast<size_t>(s) + static_cast<size_t>(r)] = static_cast<uint8_t>(b.sc[s]);
    if constexpr (f.sub_min) tile[f.m_offset() + 16 * static_cast<size_t>(s) + static_cast<size_t>(r)] = b.m[s];
  }
  uint8_t* q = tile + f.header_bytes() + 4 * r;  // row r's 4 bytes in each 64-byte vector
  for (int j = 0; j < f.tile_cols / kQK; ++j, q += f.sub_bytes()) {
    const uint8_t* u = b.u + kQK * j;  // u[4k + i]: column i of vector k
    for (int i = 0; i < 4; ++i) {
      if constexpr (f.base == PackBase::kNibbles) {
        for (int c = 0; c < 4; ++c)
          q[64 * c + i] = static_cast<uint8_t>((u[4 * c + i] & 0x0f) | (u[16 + 4 * c + i] & 0x0f) << 4);
      } else if constexpr (f.base == PackBase::kCrumbs) {
        for (int c = 0; c < 2; ++c)
          q[64 * c + i] = static_cast<uint8_t>((u[16 * c + i] & 3) | (u[16 * c + 4 + i] & 3) << 2 |
                                               (u[16 * c + 8 + i] & 3) << 4 | (u[16 * c + 12 + i] & 3) << 6);
      } else {
        for (int k = 0; k < 8; ++k) q[64 * k + i] = u[4 * k + i];
      }
      uint8_t* planes = q + f.sub_bytes() - 64u * static_cast<size_t>(f.n_planes);
      if constexpr (f.crumb_planes) {
        for (int c = 0; c < 2; ++c) {
          unsigned byte = 0;
          for (int s = 0; s < 4; ++s) byte |= ((u[16 * c + 4 * s + i] >> f.plane_bit) & 3u) << (2 * s);
          planes[64 * c + i] = static_cast<uint8_t>(byte);
        }
        continue;
      }
      for (int p = 0; p < f.n_planes; ++p) {
        unsigned byte = 0;
        for (int k = 0; k < 8; ++k) byte |= ((u[4 * k + i] >> (f.plane_bit + p)) & 1u) << k;
        planes[64 * p + i] = static_cast<uint8_t>(byte);
      }
    }
  }
}

// Q4_0, Q4_1, IQ4_NL and Q8_0 blocks already hold their values in the packed order (nibble byte j:
// elements j and j + 16; or one byte per element): their rows are copied 4 bytes at a time.
template <DType T>
constexpr bool kCopiedBlock = T == DType::Q4_0 || T == DType::Q4_1 || T == DType::IQ4_NL || T == DType::Q8_0;

template <DType T>
void copy_row(const uint8_t* blk, int r, uint8_t* tile) {
  constexpr PackFormat f = pack_format(T);
  constexpr size_t kQuants = T == DType::Q4_1 ? 4 : 2;  // the fp16 scale (and Q4_1's m) come first
  std::memcpy(tile + 2 * r, blk, 2);
  if constexpr (f.has_min) std::memcpy(tile + PackFormat::dmin_offset() + 2 * r, blk + 2, 2);
  uint8_t* q = tile + f.header_bytes() + 4 * r;
  for (int c = 0; c < (f.base == PackBase::kBytes ? 8 : 4); ++c) {
    uint32_t word;
    std::memcpy(&word, blk + kQuants + 4 * c, 4);
    if constexpr (f.base == PackBase::kBytes) word ^= 0x80808080u;  // q -> u = q + 128
    std::memcpy(q + 64 * c, &word, 4);
  }
}

template <DType T>
void pack_groups_t(const PackedMatrix& p, const uint8_t* src, size_t src_stride, int64_t g0, int64_t g1,
                   uint8_t* dst) {
  const size_t block_bytes = dtype_info(T).type_size;
  DecodedBlock b;
  for (int64_t g = g0; g < g1; ++g) {
    const int rows = static_cast<int>(std::min<int64_t>(kPackRows, p.rows - g * kPackRows));
    for (int64_t t = 0; t < p.n_tiles; ++t) {
      uint8_t* tile = dst + (static_cast<size_t>(g) * static_cast<size_t>(p.n_tiles) + static_cast<size_t>(t)) *
                                p.tile_bytes;
      if (rows < kPackRows) std::memset(tile, 0, p.tile_bytes);  // rows past the end stay zero
      for (int r = 0; r < rows; ++r) {
        const uint8_t* blk = src + static_cast<size_t>(g * kPackRows + r) * src_stride + static_cast<size_t>(t) * block_bytes;
        if constexpr (kCopiedBlock<T>) {
          copy_row<T>(blk, r, tile);
        } else {
          decode_block<T>(blk, b);
          write_row<T>(b, r, tile);
        }
      }
    }
  }
}

}  // namespace

void pack_groups(const PackedMatrix& p, const uint8_t* src, size_t src_stride, int64_t g0, int64_t g1, uint8_t* dst) {
  switch (p.dtype) {
#define WREN_PACK_CASE(T) \
  case DType::T: return pack_groups_t<DType::T>(p, src, src_stride, g0, g1, dst);
    WREN_FOR_PACKED_TYPES(WREN_PACK_CASE)
#undef WREN_PACK_CASE
    default: throw InvalidArgument(str_cat("pack_groups: ", dtype_name(p.dtype), " is not packable"));
  }
}

namespace {

// S and O of the formula in packed.h from a row's fp16 scales and integer sub-scale/offset.
inline void scale_offset(const PackFormat& f, uint16_t dh, uint16_t mh, int sc, int m, float* s, float* o) {
  const float d = fp16_to_f32(dh), dmin = fp16_to_f32(mh);
  *s = f.sub_cols ? d * static_cast<float>(sc) : d;
  if (!f.has_min)
    *o = -static_cast<float>(f.center) * *s;
  else if (f.sub_min)
    *o = static_cast<float>(f.min_sign) * dmin * static_cast<float>(m);
  else
    *o = static_cast<float>(f.min_sign) * dmin;
}

// 16 weights from their values: centered types as the format defines them, s * (value - center)
// (no cancellation), the others s * value + o.
inline void weights16(const PackFormat& f, float s, float o, const int* v, float* out) {
  for (int e = 0; e < 16; ++e)
    out[e] = f.has_min ? s * static_cast<float>(v[e]) + o : s * static_cast<float>(v[e] - f.center);
}

template <DType T>
void dequantize_file_blocks_t(const uint8_t* src, float* dst, size_t nb) {
  constexpr PackFormat f = pack_format(T);
  const size_t block_bytes = dtype_info(T).type_size;
  DecodedBlock b;
  for (size_t i = 0; i < nb; ++i, src += block_bytes) {
    decode_block<T>(src, b);
    for (int c = 0; c < f.tile_cols; c += 16, dst += 16) {
      const int sub = f.sub_cols ? c / f.sub_cols : 0;
      float s, o;
      scale_offset(f, b.d, b.dmin, b.sc[sub], b.m[sub], &s, &o);
      int v[16];
      for (int e = 0; e < 16; ++e) v[e] = packed_value(f, b.u[c + e]);
      weights16(f, s, o, v, dst);
    }
  }
}

}  // namespace

void dequantize_file_blocks(DType t, const void* src, float* dst, size_t nb) {
  const auto* p = static_cast<const uint8_t*>(src);
  switch (t) {
#define WREN_DEQUANT_CASE(T) \
  case DType::T: return dequantize_file_blocks_t<DType::T>(p, dst, nb);
    WREN_FOR_PACKED_TYPES(WREN_DEQUANT_CASE)
#undef WREN_DEQUANT_CASE
    default: throw InvalidArgument(str_cat("dequantize_file_blocks: ", dtype_name(t), " is not packable"));
  }
}

void packed_scale_offset(const PackFormat& f, const uint8_t* tile, int r, int col, float* s, float* o) {
  uint16_t dh, mh = 0;
  std::memcpy(&dh, tile + 2 * r, 2);
  if (f.has_min) std::memcpy(&mh, tile + PackFormat::dmin_offset() + 2 * r, 2);
  const size_t sub = f.sub_cols ? static_cast<size_t>(col / f.sub_cols) : 0;
  const int sc = f.sub_cols ? static_cast<int8_t>(tile[f.sc_offset() + 16 * sub + static_cast<size_t>(r)]) : 1;
  const int m = f.sub_min ? tile[f.m_offset() + 16 * sub + static_cast<size_t>(r)] : 0;
  scale_offset(f, dh, mh, sc, m, s, o);
}

void dequantize_packed_rows(const PackedMatrix& w, int64_t r0, int64_t count, float* out) {
  const PackFormat f = pack_format(w.dtype);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t row = r0 + i, g = row / kPackRows;
    const int r = static_cast<int>(row % kPackRows);
    float* o = out + i * w.cols;
    for (int64_t t = 0; t < w.n_tiles; ++t) {
      const uint8_t* tile = w.tile(g, t);
      const uint8_t* q = tile + w.header_bytes;
      for (int j = 0; j < f.tile_cols / kQK; ++j, q += f.sub_bytes(), o += kQK)
        for (int half = 0; half < 2; ++half) {
          float s, off;
          packed_scale_offset(f, tile, r, kQK * j + 16 * half, &s, &off);
          int v[16];
          for (int e = 0; e < 16; ++e) v[e] = packed_value(f, packed_u(f, q, r, 16 * half + e));
          weights16(f, s, off, v, o + 16 * half);
        }
    }
  }
}

}  // namespace wren
