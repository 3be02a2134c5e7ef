// AVX-512 (F, BW, VL) + VNNI kernels. Compiled with those flags only for this file; chosen at run
// time when CPUID reports them. Scalar twins: kernels/reference.cpp (compared in test_kernels.py).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/f16_blocks.h"
#include "kernels/kernel_table.h"
#include "tensor/packed.h"
#include "tensor/fp16.h"
#include "tensor/decode_i8.h"
#include "tensor/iq_tables.h"

namespace wren {
namespace {

// acc + the VNNI dot product of w (16 rows x 4 unsigned bytes) with activation bytes 4i..4i+3 of a
// block, repeated in every 32-bit lane. The repeat is the instruction's embedded broadcast of its
// memory operand ({1to16}): GCC emits a separate vpbroadcastd for _mm512_set1_epi32 of a load, an
// extra vector op per dot product, which is a fifth of the instructions of the few-token loops.
inline __m512i dpbusd4(__m512i acc, __m512i w, const int8_t* qs, int i) {
#if defined(__GNUC__)
  __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*reinterpret_cast<const int32_t*>(qs + 4 * i)));
  return acc;
#else
  int32_t v;
  std::memcpy(&v, qs + 4 * i, 4);
  return _mm512_dpbusd_epi32(acc, w, _mm512_set1_epi32(v));
#endif
}

// The values of one 32-column sub-block (tensor/packed.h) as 8 vectors: vector k holds columns
// 4k..4k+3 of all 16 rows as unsigned bytes, value(u) for the IQ4 formats.
template <DType T>
inline void load_values(const uint8_t* q, __m512i (&wv)[8]) {
  constexpr PackFormat F = pack_format(T);
  if constexpr (F.base == PackBase::kBytes) {
    for (int k = 0; k < 8; ++k) wv[k] = _mm512_loadu_si512(q + 64 * k);
  } else if constexpr (F.base == PackBase::kNibbles) {
    const __m512i nib = _mm512_set1_epi8(0x0f);
    for (int c = 0; c < 4; ++c) {
      const __m512i packed = _mm512_loadu_si512(q + 64 * c);
      wv[c] = _mm512_and_si512(packed, nib);                             // columns 4c..4c+3
      wv[c + 4] = _mm512_and_si512(_mm512_srli_epi16(packed, 4), nib);  // columns 16+4c..16+4c+3
    }
  } else {
    const __m512i three = _mm512_set1_epi8(3);
    for (int c = 0; c < 2; ++c) {
      const __m512i packed = _mm512_loadu_si512(q + 64 * c);
      wv[4 * c] = _mm512_and_si512(packed, three);
      wv[4 * c + 1] = _mm512_and_si512(_mm512_srli_epi16(packed, 2), three);
      wv[4 * c + 2] = _mm512_and_si512(_mm512_srli_epi16(packed, 4), three);
      wv[4 * c + 3] = _mm512_and_si512(_mm512_srli_epi16(packed, 6), three);
    }
  }
  // Merges: wv = wv | (moved & mask), one vpternlogd each.
  auto merge = [](__m512i v, __m512i moved, __m512i mask) { return _mm512_ternarylogic_epi32(v, moved, mask, 0xF8); };
  if constexpr (F.crumb_planes) {
    const uint8_t* crumbs = q + F.sub_bytes() - 128;
    const __m512i mask = _mm512_set1_epi8(static_cast<char>(3 << F.plane_bit));
    for (int c = 0; c < 2; ++c) {
      const __m512i h = _mm512_loadu_si512(crumbs + 64 * c);
      for (int s = 0; s < 4; ++s) {  // bits 2s..2s+1 -> plane_bit..plane_bit+1, inside each byte
        const int sh = 2 * s - F.plane_bit;
        const __m512i moved = sh > 0 ? _mm512_srli_epi16(h, sh) : _mm512_slli_epi16(h, -sh);
        wv[4 * c + s] = merge(wv[4 * c + s], moved, mask);
      }
    }
  } else if constexpr (F.n_planes > 0) {
    const uint8_t* planes = q + F.sub_bytes() - 64 * F.n_planes;
    for (int p = 0; p < F.n_planes; ++p) {
      const __m512i plane = _mm512_loadu_si512(planes + 64 * p);
      const int to = F.plane_bit + p;
      const __m512i bit = _mm512_set1_epi8(static_cast<char>(1 << to));
      // Bit k of the plane's byte belongs to vector k: move it to bit `to` (16-bit shifts by at
      // most 7 - to or to, so the bit never leaves its byte).
      for (int k = 0; k < 8; ++k) {
        const __m512i moved = k > to ? _mm512_srli_epi16(plane, k - to) : _mm512_slli_epi16(plane, to - k);
        wv[k] = merge(wv[k], moved, bit);
      }
    }
  }
  if constexpr (F.lut) {
    alignas(16) uint8_t levels[16];
    for (int i = 0; i < 16; ++i) levels[i] = static_cast<uint8_t>(kIQ4Values[i] + 128);
    const __m512i table = _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(levels)));
    for (int k = 0; k < 8; ++k) wv[k] = _mm512_shuffle_epi8(table, wv[k]);
  }
}

// Per-row scale S and offset O (w = S * value + O) of the 16 rows for sub-block j of a tile: one
// pair, or two (columns 0..15 and 16..31) for the 16-column sub-scales.
template <DType T>
inline void sub_scales(const uint8_t* tile, int j, __m512 d, __m512 dmin, __m512 (&s)[2], __m512 (&o)[2]) {
  constexpr PackFormat F = pack_format(T);
  constexpr int kHalves = F.sub_cols == 16 ? 2 : 1;
  for (int h = 0; h < kHalves; ++h) {
    const int sub = F.sub_cols ? (kQK * j + 16 * h) / F.sub_cols : 0;
    if constexpr (F.sub_cols != 0) {
      const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(tile + F.sc_offset() + 16 * sub));
      s[h] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc)));
    } else {
      s[h] = d;
    }
    if constexpr (!F.has_min) {
      o[h] = _mm512_setzero_ps();  // centered: the kernel applies the center with the activation sum
    } else if constexpr (F.sub_min) {
      const __m128i m = _mm_loadu_si128(reinterpret_cast<const __m128i*>(tile + F.m_offset() + 16 * sub));
      o[h] = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(m)));
    } else {
      o[h] = dmin;
    }
  }
}

// d and min_sign * dmin of a tile's 16 rows.
template <DType T>
inline void tile_scales(const uint8_t* tile, __m512& d, __m512& dmin) {
  constexpr PackFormat F = pack_format(T);
  d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile)));  // (16)
  dmin = _mm512_setzero_ps();                                                       // (16)
  if constexpr (F.has_min)
    dmin = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + F.dmin_offset()))),
                         _mm512_set1_ps(static_cast<float>(F.min_sign)));
}

// One 32-column sub-block of a group, unpacked: its values (load_values) and the S, O of each half.
struct SubBlock {
  __m512i wv[8];
  __m512 s[2], o[2];
};

// What the dot products of a sub-block need to know of its format: the center subtracted from the
// values (0 for offset formats), whether S and O differ between the two 16-column halves, and
// whether there is an offset O.
template <int Center, bool Halves, bool HasMin>
struct DotShape {
  static constexpr int kCenter = Center;
  static constexpr bool kHalves = Halves;
  static constexpr bool kHasMin = HasMin;
};
template <DType T>
using PackedShape = DotShape<pack_format(T).has_min ? 0 : pack_format(T).center, pack_format(T).sub_cols == 16,
                             pack_format(T).has_min>;
// Rows decoded to int8 (tensor/decode_i8.h) as sub-blocks: u = q + 128, a float scale per 16 columns.
using DecodedShape = DotShape<128, true, false>;

// acc[t] += the sub-block's 16 rows . token t's activation block x[t * x_stride], t < NT.
template <class Shape, int NT>
inline void sub_times_tokens(const SubBlock& b, const ActQ8* x, int64_t x_stride, __m512 (&acc)[NT]) {
  constexpr bool kHalves = Shape::kHalves;  // separate sums for columns 0..15 and 16..31
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) {
    const ActQ8& xb = x[t * x_stride];
    const __m512 dx = _mm512_set1_ps(xb.d);
    // Two integer chains halve the dependency chain of the 8 dot-product steps. Centered formats
    // start each chain at -center * (its columns' activation sum): the integer sum of
    // (value - center) * qx comes out of the chain, and the float work per chain is the same
    // S * dx multiply as for the others (no scalar -center * dx * sx to broadcast per token).
    constexpr int c = Shape::kCenter;
    const __m512i init0 = _mm512_set1_epi32(kHalves ? -c * xb.isum[0] : -c * (xb.isum[0] + xb.isum[1]));
    const __m512i init1 = _mm512_set1_epi32(kHalves ? -c * xb.isum[1] : 0);
    __m512i s0 = dpbusd4(init0, b.wv[0], xb.qs, 0);
    __m512i s1 = dpbusd4(init1, b.wv[kHalves ? 4 : 1], xb.qs, kHalves ? 4 : 1);
    if constexpr (kHalves) {  // s0: columns 0..15, s1: columns 16..31
      for (int i = 1; i < 4; ++i) {
        s0 = dpbusd4(s0, b.wv[i], xb.qs, i);
        s1 = dpbusd4(s1, b.wv[i + 4], xb.qs, i + 4);
      }
      // dx * (S0 * s0 + S1 * s1): three multiplies instead of four (the multiplier pipes, shared
      // with vpdpbusd, bound these loops).
      const __m512 halves = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), b.s[1], _mm512_mul_ps(_mm512_cvtepi32_ps(s0), b.s[0]));
      acc[t] = _mm512_fmadd_ps(halves, dx, acc[t]);
      if constexpr (Shape::kHasMin) {
        acc[t] = _mm512_fmadd_ps(b.o[0], _mm512_set1_ps(xb.half[0]), acc[t]);
        acc[t] = _mm512_fmadd_ps(b.o[1], _mm512_set1_ps(xb.half[1]), acc[t]);
      }
    } else {
      for (int i = 2; i < 8; i += 2) {
        s0 = dpbusd4(s0, b.wv[i], xb.qs, i);
        s1 = dpbusd4(s1, b.wv[i + 1], xb.qs, i + 1);
      }
      const __m512 sum = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
      acc[t] = _mm512_fmadd_ps(sum, _mm512_mul_ps(b.s[0], dx), acc[t]);
      if constexpr (Shape::kHasMin) acc[t] = _mm512_fmadd_ps(b.o[0], _mm512_set1_ps(xb.sum), acc[t]);
    }
  }
}

// Rows of one group (16 lanes) times NT tokens: acc[t] += w . x_t over all columns, each sub-block
// unpacked in registers for the NT tokens; with prefetch, each tile also prefetches ahead
// (tensor/packed.h, prefetch_ahead).
template <DType T, int NT>
inline void group_times_tokens(const PackedMatrix& w, int64_t g, const ActQ8* x, int64_t x_stride, float* y,
                               int64_t ldy, __mmask16 rows, bool prefetch) {
  constexpr PackFormat F = pack_format(T);
  constexpr int kSubs = F.tile_cols / kQK;
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t tl = 0; tl < w.n_tiles; ++tl) {
    const uint8_t* tile = w.tile(g, tl);
    if (prefetch) prefetch_ahead(tile, w.tile_bytes);
    __m512 d, dmin;
    tile_scales<T>(tile, d, dmin);
    const uint8_t* q = tile + F.header_bytes();
#pragma GCC unroll 1
    for (int j = 0; j < kSubs; ++j, q += F.sub_bytes()) {
      SubBlock b;
      load_values<T>(q, b.wv);
      sub_scales<T>(tile, j, d, dmin, b.s, b.o);
      sub_times_tokens<PackedShape<T>, NT>(b, x + tl * kSubs + j, x_stride, acc);
    }
  }
  for (int t = 0; t < NT; ++t) _mm512_mask_storeu_ps(y + t * ldy + g * kPackRows, rows, acc[t]);
}

// y[t] (16 rows at y + t * ldy) = the nsub unpacked sub-blocks in buf times NT tokens' blocks (x:
// the first sub-block's, of token 0).
template <class Shape, int NT>
inline void unpacked_times_tokens(const SubBlock* buf, int nsub, const ActQ8* x, int64_t x_stride, float* y,
                                  int64_t ldy, __mmask16 rows) {
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
#pragma GCC unroll 1
  for (int b = 0; b < nsub; ++b) sub_times_tokens<Shape, NT>(buf[b], x + b, x_stride, acc);
  for (int t = 0; t < NT; ++t) _mm512_mask_storeu_ps(y + t * ldy, rows, acc[t]);
}

// unpacked_times_tokens for all n tokens, in runs of 8, 4 and 1.
template <class Shape>
void unpacked_times_all_tokens(const SubBlock* buf, int nsub, const ActQ8* x, int64_t x_stride, int64_t n, float* y,
                               int64_t ldy, __mmask16 rows) {
  int64_t t = 0;
  for (; t + 8 <= n; t += 8) unpacked_times_tokens<Shape, 8>(buf, nsub, x + t * x_stride, x_stride, y + t * ldy, ldy, rows);
  for (; t + 4 <= n; t += 4) unpacked_times_tokens<Shape, 4>(buf, nsub, x + t * x_stride, x_stride, y + t * ldy, ldy, rows);
  for (; t < n; ++t) unpacked_times_tokens<Shape, 1>(buf, nsub, x + t * x_stride, x_stride, y + t * ldy, ldy, rows);
}

template <DType T>
void gemm_packed_t(const PackedMatrix& w, int64_t g0, int64_t g1, const ActQ8* x, int64_t x_stride, int64_t n,
                   float* y, int64_t ldy) {
  // Tokens per pass over a group's weights (unpacked once, used kTokens times), within the 32
  // registers. 8 for every format: for Q4_0/Q4_1/Q8_0 too, where 4 was as fast with the weights in
  // cache, 8 is 11% faster on an 8-sequence decode pass (SmolLM2 Q4_1), the whole batch in one pass
  // over weights that come from memory.
  constexpr int kTokens = 8;
  for (int64_t g = g0; g < g1; ++g) {
    const int64_t valid = std::min<int64_t>(kPackRows, w.rows - g * kPackRows);
    const __mmask16 rows = static_cast<__mmask16>((1u << valid) - 1u);
    // The first pass over the group's weights (from memory) prefetches; later ones find them in L1.
    const bool ahead = n > 1;  // not decode's single token (measured 4% slower with it)
    int64_t t = 0;
    for (; t + kTokens <= n; t += kTokens)
      group_times_tokens<T, kTokens>(w, g, x + t * x_stride, x_stride, y + t * ldy, ldy, rows, ahead && t == 0);
    for (; t + 4 <= n; t += 4)
      group_times_tokens<T, 4>(w, g, x + t * x_stride, x_stride, y + t * ldy, ldy, rows, ahead && t == 0);
    for (; t < n; ++t) group_times_tokens<T, 1>(w, g, x + t * x_stride, x_stride, y + t * ldy, ldy, rows, ahead && t == 0);
  }
}

void gemm_packed_avx512(const PackedMatrix& w, int64_t g0, int64_t g1, const ActQ8* x, int64_t x_stride, int64_t n,
                        float* y, int64_t ldy) {
  switch (w.dtype) {
#define WREN_PACKED_CASE(T) \
  case DType::T: return gemm_packed_t<DType::T>(w, g0, g1, x, x_stride, n, y, ldy);
    WREN_FOR_PACKED_TYPES(WREN_PACKED_CASE)
#undef WREN_PACKED_CASE
    default: return;
  }
}

// The 8 vectors of a 32-column sub-block of 16 rows `stride` bytes apart (p: row 0's first byte):
// vector k holds dword k (columns 4k..4k+3) of rows 0..15. An 8 x 8 dword transpose in each 256-bit
// half (rows 0..7 low, 8..15 high): pairs of dwords, then of qwords, then 128-bit lanes.
inline void transpose_sub_block(const int8_t* p, int64_t stride, __m512i (&v)[8]) {
  __m512i z[8], t[8], u[8];
  for (int i = 0; i < 8; ++i)
    z[i] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i * stride))),
                              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + (i + 8) * stride)), 1);
  for (int i = 0; i < 8; i += 2) {  // rows i, i+1 interleaved by dword
    t[i] = _mm512_unpacklo_epi32(z[i], z[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(z[i], z[i + 1]);
  }
  for (int g = 0; g < 8; g += 4) {  // rows g..g+3: u[g + d] holds dwords d and d + 4 of each
    u[g] = _mm512_unpacklo_epi64(t[g], t[g + 2]);
    u[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
    u[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
    u[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
  }
  const __m512i low = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), high = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm512_permutex2var_epi64(u[k], low, u[k + 4]);
    v[k + 4] = _mm512_permutex2var_epi64(u[k], high, u[k + 4]);
  }
}

// Up to 16 decoded int8 rows times n tokens (GemmI8RowsFn): the rows' sub-blocks are re-laid out
// once into the packed layout (vector k: columns 4k..4k+3 of every row, as u = q + 128) with their
// scales, in `work`; then each run of 8 tokens goes over all of them with its sums in registers, as
// group_times_tokens does. Rows past `rows` are read as well: the caller zeroes them.
void gemm_i8_rows_avx512(const int8_t* q, const float* scale, int64_t rows, int64_t cols, const ActQ8* x,
                         int64_t x_stride, int64_t n, float* y, int64_t ldy, void* work) {
  const __mmask16 valid = static_cast<__mmask16>((1u << rows) - 1u);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i s_at = _mm512_mullo_epi32(lane, _mm512_set1_epi32(static_cast<int>(cols / 16)));  // row scales
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));                                 // q + 128
  auto* subs = static_cast<SubBlock*>(work);  // (cols / 32)
  const int nsub = static_cast<int>(cols / kQK);
  for (int j = 0; j < nsub; ++j) {
    transpose_sub_block(q + kQK * j, cols, subs[j].wv);
    for (int k = 0; k < 8; ++k) subs[j].wv[k] = _mm512_xor_si512(subs[j].wv[k], flip);
    for (int h = 0; h < 2; ++h)  // (no offsets: DecodedShape never reads o)
      subs[j].s[h] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), valid, s_at, scale + 2 * j + h, 4);
  }
  unpacked_times_all_tokens<DecodedShape>(subs, nsub, x, x_stride, n, y, ldy, valid);
}

// Decoded int8 weights (signed) times int8 activations, 64 columns (two ActQ8 blocks) a step: VNNI
// takes |q| as its unsigned operand and the activations with q's signs. The sixteen int32 lanes hold
// the sums of 4 columns each, lanes 4s..4s+3 those of scale[2b + s]. An odd last block goes to the
// scalar twin.
void dot_i8_avx512(const int8_t* q, const float* scale, int64_t cols, const ActQ8* x, int64_t x_stride, int64_t n,
                   float* y, int64_t ldy) {
  const __m512i lane_scale = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  const int64_t nb = cols / kQK;
  for (int64_t t = 0; t < n; ++t) {
    const ActQ8* a = x + t * x_stride;
    __m512 acc = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
      const __m512i w = _mm512_loadu_si512(q + kQK * b);
      const __m512i v = _mm512_inserti64x4(
          _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].qs))),
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b + 1].qs)), 1);
      const __m512i signed_v = _mm512_mask_sub_epi8(v, _mm512_movepi8_mask(w), _mm512_setzero_si512(), v);
      const __m512i sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), signed_v);
      const __m128 s4 = _mm_mul_ps(_mm_loadu_ps(scale + 2 * b), _mm_set_ps(a[b + 1].d, a[b + 1].d, a[b].d, a[b].d));
      acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_permutexvar_ps(lane_scale, _mm512_castps128_ps512(s4)),
                            acc);
    }
    float r = _mm512_reduce_add_ps(acc);
    if (b < nb) {  // the odd last block: the scalar twin
      float tail;
      reference_kernels().dot_i8(q + kQK * b, scale + 2 * b, kQK, a + b, 0, 1, &tail, 0);
      r += tail;
    }
    y[t * ldy] = r;
  }
}

// 0.5 + ls for the 4-bit ls: a table, as int-to-float conversions here would wait on each other
// (vcvtsi2ss keeps the upper lanes of its destination).
constexpr float kHalfSteps[16] = {0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f, 6.5f, 7.5f,
                                  8.5f, 9.5f, 10.5f, 11.5f, 12.5f, 13.5f, 14.5f, 15.5f};
constexpr float kOddSteps[16] = {1.f,  3.f,  5.f,  7.f,  9.f,  11.f, 13.f, 15.f,  // 2 * ls + 1 (IQ1, IQ3_S)
                                 17.f, 19.f, 21.f, 23.f, 25.f, 27.f, 29.f, 31.f};

// The sign bits of two IQ2_XXS groups' 64 columns (bit c: column c is negative) from their words
// w0, w1: byte k of each group's half is kIQ2Signs of the 7-bit field k, computed in place of the
// table's eight lookups: the fields moved to their bytes, then bit 7 set where a byte's parity is odd.
inline uint64_t iq2_sign_bits(uint32_t w0, uint32_t w1) {
  const uint64_t w = (static_cast<uint64_t>(w1) << 32 | w0) & 0x0fffffff0fffffffull;  // fields at 7k, 32 + 7k
  uint64_t f = (w & 0x0000007f0000007full) | ((w << 1) & 0x00007f0000007f00ull) | ((w << 2) & 0x007f0000007f0000ull) |
               ((w << 3) & 0x7f0000007f000000ull);
  uint64_t p = f ^ (f >> 4);  // bit 0 of each byte: the parity of its 7 bits (higher bits are don't-care)
  p ^= p >> 2;
  p ^= p >> 1;
  return f | (p & 0x0101010101010101ull) << 7;
}

// A scale for each 32-column half of 64 columns, in their lanes (0-7 and 8-15 of a dot product).
inline __m512 pair_scales(float s0, float s1) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(s0)), _mm256_set1_ps(s1), 1);
}
// A scale for each 16 columns of 64 (lanes 4m..4m+3): d * f_m.
inline __m512 quarter_scales(float d, float f0, float f1, float f2, float f3) {
  const __m128 q = _mm_mul_ps(_mm_set1_ps(d), _mm_setr_ps(f0, f1, f2, f3));
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3), _mm512_castps128_ps512(q));
}
// The IQ2 formats' per-16 scales from two bytes of 4-bit ls: d * (0.5 + ls) / 4.
inline __m512 iq2_quarter_scales(float d, uint8_t b0, uint8_t b1) {
  return quarter_scales(d * 0.25f, kHalfSteps[b0 & 15], kHalfSteps[b0 >> 4], kHalfSteps[b1 & 15], kHalfSteps[b1 >> 4]);
}
// A vector of the eight qwords f(0) .. f(7) (f(k) in qword k).
template <class F>
inline __m512i qwords(F f) {
  return _mm512_set_epi64(static_cast<int64_t>(f(7)), static_cast<int64_t>(f(6)), static_cast<int64_t>(f(5)),
                          static_cast<int64_t>(f(4)), static_cast<int64_t>(f(3)), static_cast<int64_t>(f(2)),
                          static_cast<int64_t>(f(1)), static_cast<int64_t>(f(0)));
}
// Eight 64-bit grid entries (8 columns each) from their indices.
template <class Index>
inline __m512i grid_entries(const uint64_t* grid, Index index) {
  return qwords([&](int k) { return grid[index(k)]; });
}
// Sixteen 32-bit grid entries (4 columns each), paired into qwords in scalar code: vpinsrd chains and
// vpgatherdd were both slower (IQ3_XXS, 8192 x 2048, n=1: 1.97 ms either way, 1.41 paired).
template <class Index>
inline __m512i grid_entries_u32(const uint32_t* grid, Index index) {
  return qwords([&](int k) { return grid[index(2 * k)] | static_cast<uint64_t>(grid[index(2 * k + 1)]) << 32; });
}

// Two groups of 32 columns (g, g + 1) of a grid-codebook block, decoded in registers: their 64
// magnitudes (column order), sign bits (bit c: column c is negative) and each lane's scale (lanes
// 0-7: group g); with kSums (32 or 16: the columns a scale covers), also a multiple of the
// activation sums that the integer dot product adds (c0, c1: group g's products are sum(mag * x) +
// c0 * sum(x)).
struct Iq2xxsPair {
  using Block = BlockIQ2_XXS;
  static constexpr DType kType = DType::IQ2_XXS;
  static constexpr int kBlockCols = kQKK;
  static constexpr int kSums = 0;
  static void get(const Block& b, int g, __m512i& mag, uint64_t& signs, __m512& scale, int&, int&) {
    const uint8_t* q0 = b.qs + 8 * g;  // 4 grid indices (8 columns each), then the group's word
    const uint8_t* q1 = q0 + 8;
    uint32_t w0, w1;
    std::memcpy(&w0, q0 + 4, 4);
    std::memcpy(&w1, q1 + 4, 4);
    mag = grid_entries(kIQ2XXSGrid, [&](int k) { return k < 4 ? q0[k] : q1[k - 4]; });
    signs = iq2_sign_bits(w0, w1);
    const float d = fp16_to_f32(b.d) * 0.25f;
    scale = pair_scales(d * kHalfSteps[w0 >> 28], d * kHalfSteps[w1 >> 28]);
  }
};
struct Iq2xsPair {
  using Block = BlockIQ2_XS;
  static constexpr DType kType = DType::IQ2_XS;
  static constexpr int kBlockCols = kQKK;
  static constexpr int kSums = 0;
  static void get(const Block& b, int g, __m512i& mag, uint64_t& signs, __m512& scale, int&, int&) {
    const uint16_t* e = b.qs + 4 * g;  // 8 entries: 9-bit grid index, 7-bit kIQ2Signs index
    mag = grid_entries(kIQ2XSGrid, [&](int k) { return e[k] & 511u; });
    uint64_t u0, u1;  // the sign fields at bits 16k + 9 of each 4 entries
    std::memcpy(&u0, e, 8);
    std::memcpy(&u1, e + 4, 8);
    auto fields = [](uint64_t u) {
      return static_cast<uint32_t>(((u >> 9) & 0x7f) | ((u >> 18) & 0x3f80) | ((u >> 27) & 0x1fc000) | ((u >> 36) & 0xfe00000));
    };
    signs = iq2_sign_bits(fields(u0), fields(u1));
    scale = iq2_quarter_scales(fp16_to_f32(b.d), b.scales[g], b.scales[g + 1]);
  }
};
struct Iq2sPair {
  using Block = BlockIQ2_S;
  static constexpr DType kType = DType::IQ2_S;
  static constexpr int kBlockCols = kQKK;
  static constexpr int kSums = 0;
  static void get(const Block& b, int g, __m512i& mag, uint64_t& signs, __m512& scale, int&, int&) {
    const uint8_t* q = b.qs + 4 * g;  // 8 entries: 8 low index bits, 2 high ones in qh
    mag = grid_entries(kIQ2SGrid, [&](int k) { return q[k] | ((b.qh[g + k / 4] >> (2 * (k % 4))) & 3u) << 8; });
    std::memcpy(&signs, b.signs + 4 * g, 8);
    scale = iq2_quarter_scales(fp16_to_f32(b.d), b.scales[g], b.scales[g + 1]);
  }
};
struct Iq3xxsPair {
  using Block = BlockIQ3_XXS;
  static constexpr DType kType = DType::IQ3_XXS;
  static constexpr int kBlockCols = kQKK;
  static constexpr int kSums = 0;
  static void get(const Block& b, int g, __m512i& mag, uint64_t& signs, __m512& scale, int&, int&) {
    const uint8_t* q = b.qs + 8 * g;  // 16 grid indices (4 columns each)
    mag = grid_entries_u32(kIQ3XXSGrid, [&](int k) { return q[k]; });
    uint32_t w0, w1;
    std::memcpy(&w0, b.sas + 4 * g, 4);
    std::memcpy(&w1, b.sas + 4 * g + 4, 4);
    signs = iq2_sign_bits(w0, w1);
    const float d = fp16_to_f32(b.d) * 0.5f;
    scale = pair_scales(d * kHalfSteps[w0 >> 28], d * kHalfSteps[w1 >> 28]);
  }
};
struct Iq3sPair {
  using Block = BlockIQ3_S;
  static constexpr DType kType = DType::IQ3_S;
  static constexpr int kBlockCols = kQKK;
  static constexpr int kSums = 0;
  static void get(const Block& b, int g, __m512i& mag, uint64_t& signs, __m512& scale, int&, int&) {
    const uint8_t* q = b.qs + 8 * g;  // 16 entries: 8 low index bits, the ninth in qh
    mag = grid_entries_u32(kIQ3SGrid, [&](int k) { return q[k] | ((b.qh[g + k / 8] >> (k % 8)) & 1u) << 8; });
    std::memcpy(&signs, b.signs + 4 * g, 8);
    const float d = fp16_to_f32(b.d);
    const uint8_t ls = b.scales[g / 2];  // g even: low nibble group g, high g + 1
    scale = pair_scales(d * kOddSteps[ls & 15], d * kOddSteps[ls >> 4]);
  }
};
// IQ1_S: q = 8 * grid + delta (grid in -1, 0, 1; delta +-1), scale d * (2 * ls + 1) / 8. As unsigned
// magnitudes 8 * (grid + 1) in 0, 8, 16, with (delta - 8) * sum(x) added: 8 * sum(g x) + delta * sum(x).
struct Iq1sPair {
  using Block = BlockIQ1_S;
  static constexpr DType kType = DType::IQ1_S;
  static constexpr int kBlockCols = kQKK;
  static constexpr int kSums = 32;
  static void get(const Block& b, int g, __m512i& mag, uint64_t& signs, __m512& scale, int& c0, int& c1) {
    const unsigned h0 = b.qh[g], h1 = b.qh[g + 1];
    const uint8_t* q = b.qs + 4 * g;
    const __m512i grid = grid_entries(kIQ1SGrid, [&](int k) {  // bytes -1, 0, 1
      return q[k] | (((k < 4 ? h0 : h1) >> (3 * (k % 4))) & 7u) << 8;
    });
    mag = _mm512_slli_epi16(_mm512_add_epi8(grid, _mm512_set1_epi8(1)), 3);  // bytes stay under 17
    signs = 0;
    const float d = fp16_to_f32(b.d);
    scale = pair_scales(d * kOddSteps[(h0 >> 12) & 7] * 0.125f, d * kOddSteps[(h1 >> 12) & 7] * 0.125f);
    c0 = (h0 & 0x8000u) ? -9 : -7;
    c1 = (h1 & 0x8000u) ? -9 : -7;
  }
};

// IQ1_M: as IQ1_S, but delta per 8 columns and scales per 16. Magnitudes u = q + 9 = 8 * (grid + 1)
// + 1 + delta (0..18), so the products are sum(u x) - 9 * sum(x) whatever the deltas.
struct Iq1mPair {
  using Block = BlockIQ1_M;
  static constexpr DType kType = DType::IQ1_M;
  static constexpr int kBlockCols = kQKK;
  static constexpr int kSums = 16;
  static void get(const Block& b, int g, __m512i& mag, uint64_t& signs, __m512& scale, int& c0, int& c1) {
    const uint8_t* q = b.qs + 4 * g;  // entries 4g..4g+7; entry 4g+k's nibble: byte 2g + k/2 of qh
    auto nibble = [&](int k) { return (b.qh[2 * g + k / 2] >> (4 * (k % 2))) & 15u; };
    const __m512i grid = grid_entries(kIQ1SGrid, [&](int k) { return q[k] | (nibble(k) & 7u) << 8; });
    const __m512i plus = qwords([&](int k) { return (nibble(k) & 8u) ? 0ull : 0x0202020202020202ull; });
    mag = _mm512_add_epi8(_mm512_slli_epi16(_mm512_add_epi8(grid, _mm512_set1_epi8(1)), 3), plus);
    signs = 0;
    const unsigned w = b.scales[g / 2];  // ls of the 16-column groups 2g..2g+3 at bits 0, 3, 6, 9
    scale = quarter_scales(fp16_to_f32(iq1_m_d_bits(b.scales)) * 0.125f, kOddSteps[w & 7], kOddSteps[(w >> 3) & 7],
                           kOddSteps[(w >> 6) & 7], kOddSteps[(w >> 9) & 7]);
    c0 = c1 = -9;
  }
};

// MXFP4: two 32-column blocks, each an E8M0 scale and 16 bytes of 4-bit indices into kFP4Values
// (doubled E2M1, -12..12; low nibbles columns 0..15, high 16..31); magnitudes and signs from one
// vpshufb of the indices.
struct Mxfp4Pair {
  using Block = BlockMXFP4;
  static constexpr DType kType = DType::MXFP4;
  static constexpr int kBlockCols = kQK;  // pairs are two blocks
  static constexpr int kSums = 0;
  static void get(const Block* b, __m512i& mag, uint64_t& signs, __m512& scale) {
    const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].qs));
    const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[1].qs));
    const __m512i packed = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_inserti128_si256(_mm256_castsi128_si256(q0), _mm_srli_epi16(q0, 4), 1)),
        _mm256_inserti128_si256(_mm256_castsi128_si256(q1), _mm_srli_epi16(q1, 4), 1), 1);
    const __m512i levels = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kFP4Values)));
    const __m512i w = _mm512_shuffle_epi8(levels, _mm512_and_si512(packed, _mm512_set1_epi8(0x0f)));
    mag = _mm512_abs_epi8(w);
    signs = _cvtmask64_u64(_mm512_movepi8_mask(w));
    scale = pair_scales(e8m0_half(b[0].e), e8m0_half(b[1].e));
  }
};

// Rows of a grid codebook (Pair: Iq2xxsPair, ...) times NT tokens, decoded in registers: per 64
// columns the magnitudes are vpdpbusd's unsigned operand, the signs flip the activations instead,
// and the codebook's scales join the activations' in the float step.
template <class Pair, int NT>
void codebook_times_tokens(const typename Pair::Block* blocks, int64_t cols, const ActQ8* x, int64_t x_stride,
                           float* y, int64_t ldy) {
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  // acc[t] += 64 decoded columns . token t's ActQ8 blocks a[0], a[1] (a: token 0's).
  auto pair_times_tokens = [&](const __m512i& mag, uint64_t signs, const __m512& scale, int c0, int c1, const ActQ8* a) {
    const __mmask64 negative = _cvtu64_mask64(signs);
    for (int t = 0; t < NT; ++t, a += x_stride) {
      __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[0].qs))),
                                     _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[1].qs)), 1);
      __m512i init = _mm512_setzero_si512();
      if constexpr (Pair::kSums == 32) {  // c * (a group's sum) in one of its lanes: their total counts
        init = _mm512_mask_set1_epi32(_mm512_maskz_set1_epi32(0x0001, c0 * (a[0].isum[0] + a[0].isum[1])), 0x0100,
                                      c1 * (a[1].isum[0] + a[1].isum[1]));
      } else if constexpr (Pair::kSums == 16) {  // per 16 columns, in a lane of their own scale
        const __m128i sums16 = _mm_unpacklo_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(a[0].isum)),
                                                  _mm_loadl_epi64(reinterpret_cast<const __m128i*>(a[1].isum)));
        init = _mm512_maskz_expand_epi32(0x1111, _mm512_castsi128_si512(_mm_mullo_epi32(sums16, _mm_setr_epi32(c0, c0, c1, c1))));
      } else {
        v = _mm512_mask_sub_epi8(v, negative, _mm512_setzero_si512(), v);
      }
      const __m512i sums = _mm512_dpbusd_epi32(init, mag, v);  // lanes 0-7: columns 0..31
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_mul_ps(scale, pair_scales(a[0].d, a[1].d)), acc[t]);
    }
  };
  __m512i mag;
  uint64_t signs;
  __m512 scale;
  int c0 = 0, c1 = 0;
  if constexpr (Pair::kBlockCols >= 64) {  // 256-column blocks: 4 pairs each (unrolled)
    constexpr int kGroups = Pair::kBlockCols / kQK;
    for (int64_t i = 0; i < cols / Pair::kBlockCols; ++i)
      for (int g = 0; g < kGroups; g += 2) {
        Pair::get(blocks[i], g, mag, signs, scale, c0, c1);
        pair_times_tokens(mag, signs, scale, c0, c1, x + kGroups * i + g);
      }
  } else {  // 32-column blocks, two a pair
    for (int64_t p = 0; p < cols / 64; ++p) {
      Pair::get(blocks + 2 * p, mag, signs, scale);
      pair_times_tokens(mag, signs, scale, c0, c1, x + 2 * p);
    }
  }
  for (int t = 0; t < NT; ++t) y[t * ldy] = _mm512_reduce_add_ps(acc[t]);
  if (cols % 64 != 0) {  // a last lone 32-column block (32-column formats): the decoder and dot_i8's twin
    const int64_t last = cols / kQK - 1;
    int8_t q[kQK];
    float scale[2];
    decode_i8_fn(Pair::kType)(reinterpret_cast<const uint8_t*>(blocks) + last * sizeof(typename Pair::Block), q,
                              scale, kQK);
    for (int t = 0; t < NT; ++t) {
      float tail;
      reference_kernels().dot_i8(q, scale, kQK, x + t * x_stride + last, 0, 1, &tail, 0);
      y[t * ldy] += tail;
    }
  }
}

// DotRowFn for a grid codebook: runs of up to 4 tokens, each with its sums in registers.
template <class Pair>
void dot_codebook_avx512(const void* row, int64_t cols, const ActQ8* x, int64_t x_stride, int64_t n, float* y,
                         int64_t ldy) {
  const auto* blocks = static_cast<const typename Pair::Block*>(row);
  int64_t t = 0;
  for (; t + 4 <= n; t += 4) codebook_times_tokens<Pair, 4>(blocks, cols, x + t * x_stride, x_stride, y + t * ldy, ldy);
  for (; t + 2 <= n; t += 2) codebook_times_tokens<Pair, 2>(blocks, cols, x + t * x_stride, x_stride, y + t * ldy, ldy);
  if (t < n) codebook_times_tokens<Pair, 1>(blocks, cols, x + t * x_stride, x_stride, y + t * ldy, ldy);
}

float dot_f32_avx512(const void* row, const float* x, int64_t n) {
  const auto* w = static_cast<const float*>(row);
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
  }
  float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
  for (; i < n; ++i) s += w[i] * x[i];
  return s;
}

float dot_f16_avx512(const void* row, const float* x, int64_t n) {
  const auto* w = static_cast<const uint16_t*>(row);
  __m512 a0 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 wf = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i)));
    a0 = _mm512_fmadd_ps(wf, _mm512_loadu_ps(x + i), a0);
  }
  float s = _mm512_reduce_add_ps(a0);
  for (; i < n; ++i) s += fp16_to_f32(w[i]) * x[i];
  return s;
}

// F16 rows times tokens: R rows x T tokens of accumulators, each converted weight vector serving T
// tokens and each activation vector R rows; the last cols % 16 columns in scalar code (a masked
// step inside the loop would cost the loop its registers).
template <int R, int T>
struct F16Block {
  static void run(const uint16_t* w, int64_t cols, const float* x, float* y, int64_t ldy) {
    __m512 acc[R][T];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= cols; k += 16) {
      __m512 wv[R];
      for (int r = 0; r < R; ++r)
        wv[r] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * cols + k)));
      for (int t = 0; t < T; ++t) {
        const __m512 xv = _mm512_loadu_ps(x + t * cols + k);
        for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) {
        float s = _mm512_reduce_add_ps(acc[r][t]);
        for (int64_t j = k; j < cols; ++j) s += fp16_to_f32(w[r * cols + j]) * x[t * cols + j];
        y[t * ldy + r] = s;
      }
  }
};

void gemm_f16_avx512(const uint16_t* w, int64_t cols, int64_t r0, int64_t r1, const float* x, int64_t n, float* y,
                     int64_t ldy) {
  // 4 x 4 accumulators: about 90% of the FMA peak on Zen 4 from 32 tokens up
  f16_rows_times_tokens<F16Block, 4, 4>(w, cols, r0, r1, x, n, y, ldy);
}

}  // namespace

const KernelTable* avx512_kernels() {
  static const KernelTable table = [] {
    KernelTable t{"avx512", gemm_packed_avx512, dot_f32_avx512, dot_f16_avx512, gemm_f16_avx512};
    t.dot_i8 = dot_i8_avx512;
    t.gemm_i8_rows = gemm_i8_rows_avx512;
    t.dot_iq2_xxs = dot_codebook_avx512<Iq2xxsPair>;
    t.dot_iq3_xxs = dot_codebook_avx512<Iq3xxsPair>;
    t.dot_iq1_s = dot_codebook_avx512<Iq1sPair>;
    t.dot_iq2_xs = dot_codebook_avx512<Iq2xsPair>;
    t.dot_iq2_s = dot_codebook_avx512<Iq2sPair>;
    t.dot_iq3_s = dot_codebook_avx512<Iq3sPair>;
    t.dot_mxfp4 = dot_codebook_avx512<Mxfp4Pair>;
    t.dot_iq1_m = dot_codebook_avx512<Iq1mPair>;
    fill_attention_kernels_avx2(t);    // F16 conversions
    fill_attention_kernels_avx512(t);  // decode attention
    fill_low_rank_kernels_avx2(t);     // LoRA's B h: rows of 4 to 64 floats gain nothing from 16 lanes
    fill_activation_kernels_avx512(t);
    return t;
  }();
  return &table;
}

}  // namespace wren
