// AVX2 + FMA + F16C kernels. Compiled with those flags only for this file; chosen at run time.
// Each has a scalar twin in kernels/reference.cpp; tests/python/test_kernels.py compares them.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "kernels/f16_blocks.h"
#include "kernels/kernel_table.h"
#include "tensor/packed.h"
#include "tensor/fp16.h"

namespace wren {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Stores the first `rows` lanes of v (all 8 when rows >= 8, none when rows <= 0): the rows of a
// partial last group are never written.
inline void store_rows(float* dst, __m256 v, int64_t rows) {
  if (rows >= 8) {
    _mm256_storeu_ps(dst, v);
  } else if (rows > 0) {
    float out[8];
    _mm256_storeu_ps(out, v);
    std::memcpy(dst, out, static_cast<size_t>(rows) * sizeof(float));
  }
}

inline __m256i broadcast4(const int8_t* qs, int i) {
  int32_t v;
  std::memcpy(&v, qs + 4 * i, 4);
  return _mm256_set1_epi32(v);
}

// maddubs wants an unsigned first operand and saturates pairs at int16: the 8-bit formats (Q8_0,
// and the IQ4 levels) are multiplied as signed values, value - 128, with the activation's sign
// moved onto them; the others as unsigned u.
template <DType T>
constexpr bool kSignedValues = pack_format(T).base == PackBase::kBytes || pack_format(T).lut;

// Four vectors of one 32-column sub-block (tensor/packed.h), rows 8h..8h+7 of the group: wv[i] holds
// columns 4(4c+i)..4(4c+i)+3, so c = 0 gives columns 0..15 and c = 1 columns 16..31 (bytes
// 32h..32h+31 of each 64-byte vector of the layout).
template <DType T>
inline void load_quarter_values(const uint8_t* q, int h, int c, __m256i* wv /* (4) */) {
  constexpr PackFormat F = pack_format(T);
  auto load = [&](size_t at) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + at + 32 * h)); };
  if constexpr (F.base == PackBase::kBytes) {
    const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));  // u = q + 128 -> q
    for (int i = 0; i < 4; ++i) wv[i] = _mm256_xor_si256(load(64 * (4 * c + i)), flip);
  } else if constexpr (F.base == PackBase::kNibbles) {
    const __m256i nib = _mm256_set1_epi8(0x0f);  // chunk i: vector i low, vector i + 4 high
    for (int i = 0; i < 4; ++i) wv[i] = _mm256_and_si256(c ? _mm256_srli_epi16(load(64 * i), 4) : load(64 * i), nib);
  } else {
    const __m256i three = _mm256_set1_epi8(3);  // chunk c: vectors 4c..4c+3
    const __m256i packed = load(64 * c);
    for (int i = 0; i < 4; ++i) wv[i] = _mm256_and_si256(_mm256_srli_epi16(packed, 2 * i), three);
  }
  if constexpr (F.crumb_planes) {
    const __m256i mask = _mm256_set1_epi8(static_cast<char>(3 << F.plane_bit));
    const __m256i hc = load(F.sub_bytes() - 128 + 64 * c);
    for (int i = 0; i < 4; ++i) {  // bits 2i..2i+1 -> plane_bit..plane_bit+1, inside each byte
      const int sh = 2 * i - F.plane_bit;
      const __m256i moved = sh > 0 ? _mm256_srli_epi16(hc, sh) : _mm256_slli_epi16(hc, -sh);
      wv[i] = _mm256_or_si256(wv[i], _mm256_and_si256(moved, mask));
    }
  } else if constexpr (F.n_planes > 0) {
    for (int p = 0; p < F.n_planes; ++p) {
      const __m256i plane = load(F.sub_bytes() - 64 * (F.n_planes - p));
      const int to = F.plane_bit + p;
      const __m256i bit = _mm256_set1_epi8(static_cast<char>(1 << to));
      for (int i = 0; i < 4; ++i) {  // bit k of the plane's byte belongs to vector k
        const int k = 4 * c + i;
        const __m256i moved = k > to ? _mm256_srli_epi16(plane, k - to) : _mm256_slli_epi16(plane, to - k);
        wv[i] = _mm256_or_si256(wv[i], _mm256_and_si256(moved, bit));
      }
    }
  }
  if constexpr (F.lut) {
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4Values)));
    for (int i = 0; i < 4; ++i) wv[i] = _mm256_shuffle_epi8(table, wv[i]);
  }
}

// All eight vectors of the sub-block (vector k: columns 4k..4k+3).
template <DType T>
inline void load_half_values(const uint8_t* q, int h, __m256i (&wv)[8]) {
  for (int c = 0; c < 2; ++c) load_quarter_values<T>(q, h, c, wv + 4 * c);
}

// Integer dot products of the 8 rows with an activation block over vectors [K0, K1) (columns
// 4*K0..4*K1-1): 8 int32 lanes, exact.
template <DType T, int K0, int K1>
inline __m256i int_sums(const __m256i* wv, const int8_t* qs) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc = _mm256_setzero_si256();
  if constexpr (kSignedValues<T>) {
    for (int k = K0; k < K1; ++k) {
      const __m256i xk = broadcast4(qs, k);
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(xk, xk),
                                                                         _mm256_sign_epi8(wv[k], xk)), ones));
    }
  } else {
    // Runs of products that cannot overflow the int16 lanes of maddubs (u * 127 * 2 per product).
    constexpr int kRun = std::min(8, 32767 / (254 * pack_format(T).max_value()));
    for (int k = K0; k < K1; k += kRun) {
      __m256i p = _mm256_maddubs_epi16(wv[k], broadcast4(qs, k));
      for (int i = 1; i < kRun && k + i < K1; ++i)
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(wv[k + i], broadcast4(qs, k + i)));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
    }
  }
  return acc;
}

// int_sums of a signed format with |w| computed once for all the tokens that use the vectors (aw):
// maddubs(|w|, x * sgn(w)) gives the same products with one sign per vector instead of two.
template <int K0, int K1>
inline __m256i int_sums_abs(const __m256i* aw, const __m256i* wv, const int8_t* qs) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc = _mm256_setzero_si256();
  for (int k = K0; k < K1; ++k)
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(aw[k], _mm256_sign_epi8(broadcast4(qs, k), wv[k])), ones));
  return acc;
}

// Per-row scale S and offset O of rows 8h..8h+7 for sub-block j of a tile (tensor/packed.h): one
// pair, or two (columns 0..15, 16..31) for 16-column sub-scales.
template <DType T>
inline void half_sub_scales(const uint8_t* tile, int h, int j, __m256 d, __m256 dmin, __m256 (&s)[2],
                            __m256 (&o)[2]) {
  constexpr PackFormat F = pack_format(T);
  constexpr int kHalves = F.sub_cols == 16 ? 2 : 1;
  for (int c = 0; c < kHalves; ++c) {
    const int sub = F.sub_cols ? (kQK * j + 16 * c) / F.sub_cols : 0;
    if constexpr (F.sub_cols != 0) {
      const __m128i sc = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(tile + F.sc_offset() + 16 * sub + 8 * h));
      s[c] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)));
    } else {
      s[c] = d;
    }
    if constexpr (!F.has_min) {
      // Centered (the signed formats included): the kernel applies the center with the activation sum.
      o[c] = _mm256_setzero_ps();
    } else if constexpr (F.sub_min) {
      const __m128i m = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(tile + F.m_offset() + 16 * sub + 8 * h));
      o[c] = _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(m)));
    } else {
      o[c] = dmin;
    }
  }
}

// Bytes ahead of the tile being read that decode prefetches.
constexpr size_t kPrefetchAhead = 4096;

// Rows 8*H0..8*H1-1 of group g (one half, or both) times NT tokens, any packed format: decode's
// product (NT == 1, both halves of each sub-block in turn, so the weights stream through memory in
// order). Prefill uses half_group_times_tokens below, which keeps fewer registers live.
template <DType T, int NT, int H0, int H1>
inline void rows_times_tokens(const PackedMatrix& w, int64_t g, const ActQ8* x, int64_t x_stride, float* y,
                              int64_t ldy, int64_t valid) {
  constexpr PackFormat F = pack_format(T);
  constexpr int kSubs = F.tile_cols / kQK;
  constexpr bool kHalves = F.sub_cols == 16;
  constexpr bool kOffsets = !kSignedValues<T>;
  constexpr bool kCentered = kOffsets && !F.has_min;  // unsigned values with a center (Q4_0, Q5_0, Q6_K, ...)
  __m256 acc[H1 - H0][NT];
  for (int h = 0; h < H1 - H0; ++h)
    for (int t = 0; t < NT; ++t) acc[h][t] = _mm256_setzero_ps();
  for (int64_t tl = 0; tl < w.n_tiles; ++tl) {
    const uint8_t* tile = w.tile(g, tl);
    if constexpr (NT == 1) {
      // The packed matrix is one linear stream; ask for it well ahead (prefetches never fault, so
      // running past the end of the matrix is harmless).
      for (size_t off = 0; off < w.tile_bytes; off += 64)
        _mm_prefetch(reinterpret_cast<const char*>(tile + kPrefetchAhead + off), _MM_HINT_T0);
    }
    // Each half's row scales, once per tile (the K-quants' tiles have 8 sub-blocks).
    __m256 d[H1 - H0], dmin[H1 - H0];  // (8) each
    for (int h = H0; h < H1; ++h) {
      d[h - H0] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tile + 16 * h)));
      dmin[h - H0] = _mm256_setzero_ps();
      if constexpr (F.has_min)
        dmin[h - H0] = _mm256_mul_ps(
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tile + F.dmin_offset() + 16 * h))),
            _mm256_set1_ps(static_cast<float>(F.min_sign)));
    }
#pragma GCC unroll 1
    for (int j = 0; j < kSubs; ++j) {
      const uint8_t* q = tile + F.header_bytes() + static_cast<size_t>(j) * F.sub_bytes();
      for (int h = H0; h < H1; ++h) {
        __m256i wv[8];
        load_half_values<T>(q, h, wv);
        __m256 s[2], o[2];
        half_sub_scales<T>(tile, h, j, d[h - H0], dmin[h - H0], s, o);
        for (int t = 0; t < NT; ++t) {
          const ActQ8& xb = x[t * x_stride + tl * kSubs + j];
          const __m256 dx = _mm256_set1_ps(xb.d);
          __m256& a = acc[h - H0][t];
          // Centered formats: S * (dx * isum - center * dx * sx), one multiply fewer than the
          // general S * dx * isum + O * dx * sx.
          constexpr float c = kCentered ? static_cast<float>(F.center) : 0.f;
          if constexpr (kHalves) {
            const __m256 i0 = _mm256_cvtepi32_ps(int_sums<T, 0, 4>(wv, xb.qs));
            const __m256 i1 = _mm256_cvtepi32_ps(int_sums<T, 4, 8>(wv, xb.qs));
            if constexpr (kCentered) {
              a = _mm256_fmadd_ps(s[0], _mm256_fmadd_ps(i0, dx, _mm256_set1_ps(-c * xb.half[0])), a);
              a = _mm256_fmadd_ps(s[1], _mm256_fmadd_ps(i1, dx, _mm256_set1_ps(-c * xb.half[1])), a);
            } else {
              a = _mm256_fmadd_ps(i0, _mm256_mul_ps(s[0], dx), a);
              a = _mm256_fmadd_ps(i1, _mm256_mul_ps(s[1], dx), a);
              if constexpr (kOffsets) {
                a = _mm256_fmadd_ps(o[0], _mm256_set1_ps(xb.half[0]), a);
                a = _mm256_fmadd_ps(o[1], _mm256_set1_ps(xb.half[1]), a);
              }
            }
          } else {
            const __m256 i0 = _mm256_cvtepi32_ps(int_sums<T, 0, 8>(wv, xb.qs));
            if constexpr (kCentered) {
              a = _mm256_fmadd_ps(s[0], _mm256_fmadd_ps(i0, dx, _mm256_set1_ps(-c * xb.sum)), a);
            } else {
              a = _mm256_fmadd_ps(i0, _mm256_mul_ps(s[0], dx), a);
              if constexpr (kOffsets) a = _mm256_fmadd_ps(o[0], _mm256_set1_ps(xb.sum), a);
            }
          }
        }
      }
    }
  }
  for (int h = H0; h < H1; ++h)
    for (int t = 0; t < NT; ++t) store_rows(y + t * ldy + g * kPackRows + 8 * h, acc[h - H0][t], valid - 8 * h);
}

// Prefill, rows 8h..8h+7 of group g times NT tokens, the packed formats without a kernel of their
// own: each 16-column quarter of a sub-block (4 vectors) is unpacked once and multiplied with all NT
// tokens, folded into the float accumulators at once (its own S and O, or the sub-block's, with
// the activation sum of those 16 columns), so only NT accumulators, 4 weight vectors and the scales
// are live: the 16 registers hold them without spills.
template <DType T, int NT>
inline void half_group_times_tokens(const PackedMatrix& w, int64_t g, int h, const ActQ8* x, int64_t x_stride,
                                    float* y, int64_t ldy, int64_t valid, bool prefetch) {
  constexpr PackFormat F = pack_format(T);
  constexpr int kSubs = F.tile_cols / kQK;
  constexpr bool kHalves = F.sub_cols == 16;
  constexpr bool kOffsets = !kSignedValues<T>;
  constexpr bool kCentered = kOffsets && !F.has_min;
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t tl = 0; tl < w.n_tiles; ++tl) {
    const uint8_t* tile = w.tile(g, tl);
    if (prefetch) prefetch_ahead(tile, w.tile_bytes);
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tile + 16 * h)));  // (8)
    __m256 dmin = _mm256_setzero_ps();                                                                    // (8)
    if constexpr (F.has_min)
      dmin = _mm256_mul_ps(
          _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tile + F.dmin_offset() + 16 * h))),
          _mm256_set1_ps(static_cast<float>(F.min_sign)));
#pragma GCC unroll 1
    for (int j = 0; j < kSubs; ++j) {
      const uint8_t* q = tile + F.header_bytes() + static_cast<size_t>(j) * F.sub_bytes();
      __m256 s[2], o[2];
      half_sub_scales<T>(tile, h, j, d, dmin, s, o);
      __m256i first[NT];  // 32-column scales: each token's integer sum of columns 0..15
      for (int c = 0; c < 2; ++c) {
        __m256i wv[4], aw[4];
        load_quarter_values<T>(q, h, c, wv);
        if constexpr (!kOffsets)
          for (int i = 0; i < 4; ++i) aw[i] = _mm256_abs_epi8(wv[i]);
#pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) {
          const ActQ8& xb = x[t * x_stride + tl * kSubs + j];
          __m256i quarter;
          if constexpr (kOffsets)
            quarter = int_sums<T, 0, 4>(wv, xb.qs + 16 * c);
          else
            quarter = int_sums_abs<0, 4>(aw, wv, xb.qs + 16 * c);
          if (!kHalves && c == 0) {
            first[t] = quarter;
            continue;
          }
          // This quarter's (kHalves) or the whole sub-block's S, O and activation sum.
          const __m256 isum = _mm256_cvtepi32_ps(kHalves ? quarter : _mm256_add_epi32(first[t], quarter));
          const __m256 sc = s[kHalves ? c : 0], oc = o[kHalves ? c : 0];
          const float sx = kHalves ? xb.half[c] : xb.sum;
          if constexpr (kCentered) {  // S * (dx * isum - center * dx * sx)
            const float center = static_cast<float>(F.center);
            const __m256 centered = _mm256_fmadd_ps(isum, _mm256_set1_ps(xb.d), _mm256_set1_ps(-center * sx));
            acc[t] = _mm256_fmadd_ps(sc, centered, acc[t]);
          } else {
            acc[t] = _mm256_fmadd_ps(isum, _mm256_mul_ps(sc, _mm256_set1_ps(xb.d)), acc[t]);
            if constexpr (kOffsets) acc[t] = _mm256_fmadd_ps(oc, _mm256_set1_ps(sx), acc[t]);
          }
        }
      }
    }
  }
  for (int t = 0; t < NT; ++t) store_rows(y + t * ldy + g * kPackRows + 8 * h, acc[t], valid - 8 * h);
}

// Q4_0 / Q4_1 prefill, rows 8h..8h+7 of group g times NT tokens: each 32-byte chunk of the half
// tile is unpacked once and used by all NT tokens; per token one int16 accumulator per block (16
// products of <= 15*127 each fit), so everything stays in the 16 vector registers.
template <DType T, int NT>
inline void half_group_times_tokens_q4(const PackedMatrix& w, int64_t g, int h, const ActQ8* x, int64_t x_stride,
                                       float* y, int64_t ldy, int64_t valid, bool prefetch) {
  const __m256i nib = _mm256_set1_epi8(0x0f);
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < w.n_tiles; ++b) {
    const uint8_t* tile = w.tile(g, b);
    if (prefetch) prefetch_ahead(tile, w.tile_bytes);
    const uint8_t* q = tile + w.header_bytes;
    __m256i p[NT];
    for (int t = 0; t < NT; ++t) p[t] = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * c + 32 * h));
      const __m256i lo = _mm256_and_si256(packed, nib);                        // columns 4c..4c+3
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), nib);  // columns 16+4c..
      for (int t = 0; t < NT; ++t) {
        const int8_t* qs = x[t * x_stride + b].qs;
        p[t] = _mm256_add_epi16(p[t], _mm256_maddubs_epi16(lo, broadcast4(qs, c)));
        p[t] = _mm256_add_epi16(p[t], _mm256_maddubs_epi16(hi, broadcast4(qs, c + 4)));
      }
    }
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tile + 16 * h)));  // (8)
    const __m256 mw = T == DType::Q4_1
                          ? _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tile + PackFormat::dmin_offset() + 16 * h)))
                          : _mm256_mul_ps(d, _mm256_set1_ps(-8.f));
    for (int t = 0; t < NT; ++t) {
      const ActQ8& xb = x[t * x_stride + b];
      const __m256 s = _mm256_cvtepi32_ps(_mm256_madd_epi16(p[t], _mm256_set1_epi16(1)));
      acc[t] = _mm256_fmadd_ps(s, _mm256_mul_ps(d, _mm256_set1_ps(xb.d)), acc[t]);
      acc[t] = _mm256_fmadd_ps(mw, _mm256_set1_ps(xb.sum), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) store_rows(y + t * ldy + g * kPackRows + 8 * h, acc[t], valid - 8 * h);
}

template <DType T>
void gemm_packed_t(const PackedMatrix& w, int64_t g0, int64_t g1, const ActQ8* x, int64_t x_stride, int64_t n,
                   float* y, int64_t ldy) {
  constexpr bool kQ4 = T == DType::Q4_0 || T == DType::Q4_1;
  constexpr int kTokens = 4;  // tokens per pass over a half group's weights
  for (int64_t g = g0; g < g1; ++g) {
    const int64_t valid = std::min<int64_t>(kPackRows, w.rows - g * kPackRows);
    if (n == 1) {
      rows_times_tokens<T, 1, 0, 2>(w, g, x, x_stride, y, ldy, valid);
      continue;
    }
    auto half = [&](auto h_tag) {
      constexpr int h = decltype(h_tag)::value;
      int64_t t = 0;
      // The first pass over the group's weights (from memory) prefetches, once for both halves.
      for (; t + kTokens <= n; t += kTokens) {
        const bool ahead = h == 0 && t == 0;
        if constexpr (kQ4)
          half_group_times_tokens_q4<T, kTokens>(w, g, h, x + t * x_stride, x_stride, y + t * ldy, ldy, valid, ahead);
        else
          half_group_times_tokens<T, kTokens>(w, g, h, x + t * x_stride, x_stride, y + t * ldy, ldy, valid, ahead);
      }
      for (; t < n; ++t)
        half_group_times_tokens<T, 1>(w, g, h, x + t * x_stride, x_stride, y + t * ldy, ldy, valid, h == 0 && t == 0);
    };
    half(std::integral_constant<int, 0>{});
    if (valid > 8) half(std::integral_constant<int, 1>{});
  }
}

void gemm_packed_avx2(const PackedMatrix& w, int64_t g0, int64_t g1, const ActQ8* x, int64_t x_stride, int64_t n,
                      float* y, int64_t ldy) {
  switch (w.dtype) {
#define WREN_PACKED_CASE(T) \
  case DType::T: return gemm_packed_t<DType::T>(w, g0, g1, x, x_stride, n, y, ldy);
    WREN_FOR_PACKED_TYPES(WREN_PACKED_CASE)
#undef WREN_PACKED_CASE
    default: return;
  }
}

// Decoded int8 weights (signed) times int8 activations: maddubs takes |q| as its unsigned operand and
// the activations with q's signs; pair sums stay under 2 * 127 * 127 < 2^15. Per 32 columns the eight
// int32 lanes hold the sums of 4 columns each, lanes 0-3 the first 16 (scale[2b]), 4-7 the second.
void dot_i8_avx2(const int8_t* q, const float* scale, int64_t cols, const ActQ8* x, int64_t x_stride, int64_t n,
                 float* y, int64_t ldy) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t t = 0; t < n; ++t) {
    const ActQ8* a = x + t * x_stride;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / kQK; ++b) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + kQK * b));
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].qs));
      const __m256i pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(v, w));
      const __m256 sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
      const __m256 sc = _mm256_mul_ps(_mm256_set1_ps(a[b].d),
                                      _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_broadcast_ss(scale + 2 * b)),
                                                           _mm_broadcast_ss(scale + 2 * b + 1), 1));
      if (b & 1)
        acc1 = _mm256_fmadd_ps(sums, sc, acc1);
      else
        acc0 = _mm256_fmadd_ps(sums, sc, acc0);
    }
    y[t * ldy] = hsum(_mm256_add_ps(acc0, acc1));
  }
}

// Rows 0..7 of a 32-column sub-block, `stride` bytes apart (p: row 0's first byte), as 8 vectors:
// vector k holds dword k (columns 4k..4k+3) of each row. An 8 x 8 dword transpose: pairs of dwords,
// then of qwords, then 128-bit lanes.
inline void transpose_sub_block(const int8_t* p, int64_t stride, __m256i (&v)[8]) {
  __m256i z[8], t[8], u[8];
  for (int i = 0; i < 8; ++i) z[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i * stride));
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(z[i], z[i + 1]);
    t[i + 1] = _mm256_unpackhi_epi32(z[i], z[i + 1]);
  }
  for (int g = 0; g < 8; g += 4) {  // rows g..g+3: u[g + d] holds dwords d and d + 4 of each
    u[g] = _mm256_unpacklo_epi64(t[g], t[g + 2]);
    u[g + 1] = _mm256_unpackhi_epi64(t[g], t[g + 2]);
    u[g + 2] = _mm256_unpacklo_epi64(t[g + 1], t[g + 3]);
    u[g + 3] = _mm256_unpackhi_epi64(t[g + 1], t[g + 3]);
  }
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x20);
    v[k + 4] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x31);
  }
}

// Eight decoded rows' 32-column sub-block, re-laid out: vector k holds columns 4k..4k+3 of the 8
// rows (signed q), s[c] the rows' scales of columns 16c..16c+15.
struct HalfSub {
  __m256i wv[8];
  __m256 s[2];
};

// Rows 8h..8h+7 of gemm_i8_rows times NT tokens, all columns: each 16 columns (4 vectors and their
// |q|) serve the NT tokens, maddubs(|q|, x * sgn(q)) as in dot_i8_avx2.
template <int NT>
inline void half_rows_times_tokens(const HalfSub* subs, int nsub, const ActQ8* x, int64_t x_stride, float* y,
                                   int64_t ldy, int64_t valid) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int j = 0; j < nsub; ++j) {
    for (int c = 0; c < 2; ++c) {
      const __m256i* wv = subs[j].wv + 4 * c;
      __m256i aw[4];
      for (int i = 0; i < 4; ++i) aw[i] = _mm256_abs_epi8(wv[i]);
      for (int t = 0; t < NT; ++t) {
        const ActQ8& xb = x[t * x_stride + j];
        __m256i sum = _mm256_setzero_si256();
        for (int i = 0; i < 4; ++i) {
          const __m256i p = _mm256_maddubs_epi16(aw[i], _mm256_sign_epi8(broadcast4(xb.qs, 4 * c + i), wv[i]));
          sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, ones));
        }
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_mul_ps(subs[j].s[c], _mm256_set1_ps(xb.d)), acc[t]);
      }
    }
  }
  for (int t = 0; t < NT; ++t) store_rows(y + t * ldy, acc[t], valid);
}

// Up to 16 decoded int8 rows times n tokens (GemmI8RowsFn): each half (8 rows) of the group is
// re-laid out once into `work` (HalfSub per 32 columns; the scales gathered, zero for absent rows),
// then runs of 4 tokens go over all its columns with their sums in registers.
void gemm_i8_rows_avx2(const int8_t* q, const float* scale, int64_t rows, int64_t cols, const ActQ8* x,
                       int64_t x_stride, int64_t n, float* y, int64_t ldy, void* work) {
  auto* subs = static_cast<HalfSub*>(work);  // (cols / 32) for rows 0..7, then as many for rows 8..15
  const int nsub = static_cast<int>(cols / kQK);
  const __m256i s_at = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                          _mm256_set1_epi32(static_cast<int>(cols / 16)));  // row scales
  for (int h = 0; h < 2 && 8 * h < rows; ++h) {
    HalfSub* half = subs + h * nsub;
    const int8_t* q8 = q + 8 * h * cols;
    const float* s8 = scale + 8 * h * (cols / 16);
    for (int j = 0; j < nsub; ++j) {
      transpose_sub_block(q8 + kQK * j, cols, half[j].wv);
      for (int c = 0; c < 2; ++c) half[j].s[c] = _mm256_i32gather_ps(s8 + 2 * j + c, s_at, 4);
    }
    float* yh = y + 8 * h;
    const int64_t valid = rows - 8 * h;
    int64_t t = 0;
    for (; t + 4 <= n; t += 4) half_rows_times_tokens<4>(half, nsub, x + t * x_stride, x_stride, yh + t * ldy, ldy, valid);
    for (; t < n; ++t) half_rows_times_tokens<1>(half, nsub, x + t * x_stride, x_stride, yh + t * ldy, ldy, valid);
  }
}

float dot_f32_avx2(const void* row, const float* x, int64_t n) {
  const auto* w = static_cast<const float*>(row);
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
  }
  float s = hsum(_mm256_add_ps(a0, a1));
  for (; i < n; ++i) s += w[i] * x[i];
  return s;
}

float dot_f16_avx2(const void* row, const float* x, int64_t n) {
  const auto* w = static_cast<const uint16_t*>(row);
  __m256 a0 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 wf = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i)));
    a0 = _mm256_fmadd_ps(wf, _mm256_loadu_ps(x + i), a0);
  }
  float s = hsum(a0);
  for (; i < n; ++i) s += fp16_to_f32(w[i]) * x[i];
  return s;
}

// F16 rows times tokens: R rows x T tokens of accumulators, each loaded weight vector serving T
// tokens and each activation vector R rows; the last cols % 8 columns in scalar code. 4 x 2 keeps
// accumulators and weights in 12 of the 16 registers (4 x 3 spills one accumulator a step and
// runs at half speed).
template <int R, int T>
struct F16Block {
  static void run(const uint16_t* w, int64_t cols, const float* x, float* y, int64_t ldy) {
    __m256 acc[R][T];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= cols; k += 8) {
      __m256 wv[R];
      for (int r = 0; r < R; ++r)
        wv[r] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + r * cols + k)));
      for (int t = 0; t < T; ++t) {
        const __m256 xv = _mm256_loadu_ps(x + t * cols + k);
        for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) {
        float s = hsum(acc[r][t]);
        for (int64_t j = k; j < cols; ++j) s += fp16_to_f32(w[r * cols + j]) * x[t * cols + j];
        y[t * ldy + r] = s;
      }
  }
};

void gemm_f16_avx2(const uint16_t* w, int64_t cols, int64_t r0, int64_t r1, const float* x, int64_t n, float* y,
                   int64_t ldy) {
  f16_rows_times_tokens<F16Block, 4, 2>(w, cols, r0, r1, x, n, y, ldy);
}

}  // namespace

const KernelTable* avx2_kernels() {
  static const KernelTable table = [] {
    KernelTable t{"avx2", gemm_packed_avx2, dot_f32_avx2, dot_f16_avx2, gemm_f16_avx2};
    t.dot_i8 = dot_i8_avx2;
    t.gemm_i8_rows = gemm_i8_rows_avx2;
    fill_attention_kernels_avx2(t);
    fill_low_rank_kernels_avx2(t);
    fill_activation_kernels_avx2(t);
    return t;
  }();
  return &table;
}

}  // namespace wren
