// The round-trip formats, bit-identical to gguf-py's numpy quantizer (gguf/quants.py), and the
// dispatch of quantize_row. gguf-py computes in float32, one operation at a time: a scale from the
// block's extremes, its reciprocal (0 for a zero scale), then x * id + offset truncated toward zero
// (Q4/Q5) or rounded half away from zero (Q8_0), and the scales rounded to fp16 to nearest-even.
// The same float32 operations in the same order give the same bits; this file is built with
// -ffp-contract=off so that no multiply-add is fused into one rounding.
#include "tensor/quantize.h"

#include <cmath>
#include <cstring>
#include <string>

#include "tensor/blocks.h"
#include "tensor/fp16.h"
#include "util/errors.h"

namespace wren {
namespace {

// The element of largest magnitude, with its sign (the first one on ties, as numpy's argmax).
float signed_absmax(const float* x) {
  float best = x[0], best_abs = std::fabs(x[0]);
  for (int j = 1; j < kQK; ++j)
    if (std::fabs(x[j]) > best_abs) {
      best_abs = std::fabs(x[j]);
      best = x[j];
    }
  return best;
}

void min_max(const float* x, float* lo, float* hi) {
  *lo = *hi = x[0];
  for (int j = 1; j < kQK; ++j) {
    *lo = std::fmin(*lo, x[j]);
    *hi = std::fmax(*hi, x[j]);
  }
}

float reciprocal_or_zero(float d) { return d == 0.f ? 0.f : 1.f / d; }

// trunc(v) as uint8, then clipped to [0, top]; v is never negative here.
uint8_t trunc_clip(float v, int top) {
  const int q = static_cast<int>(std::trunc(v));
  return static_cast<uint8_t>(q < 0 ? 0 : q > top ? top : q);
}

// Element j in the low nibble of byte j, element j + 16 in the high nibble (the low 4 bits of each).
void pack_nibbles(const uint8_t* q, uint8_t* qs) {
  for (int j = 0; j < kQK / 2; ++j) qs[j] = static_cast<uint8_t>((q[j] & 0x0f) | (q[j + kQK / 2] & 0x0f) << 4);
}

// Bit j of the little-endian word: bit 4 of element j.
void pack_high_bits(const uint8_t* q, uint8_t* qh) {
  uint32_t h = 0;
  for (int j = 0; j < kQK; ++j) h |= static_cast<uint32_t>((q[j] >> 4) & 1u) << j;
  std::memcpy(qh, &h, 4);
}

// Q4_0 and Q5_0: x = (q - half) * d, the largest-magnitude element at q = 0.
template <typename Block, int kHalf>
void quantize_symmetric(const float* x, Block* out) {
  const float d = signed_absmax(x) / static_cast<float>(-kHalf);
  const float id = reciprocal_or_zero(d);
  uint8_t q[kQK];
  for (int j = 0; j < kQK; ++j) q[j] = trunc_clip(x[j] * id + (static_cast<float>(kHalf) + 0.5f), 2 * kHalf - 1);
  out->d = f32_to_fp16(d);
  pack_nibbles(q, out->qs);
  if constexpr (kHalf == 16) pack_high_bits(q, out->qh);
}

// Q4_1 and Q5_1: x = q * d + m, m the block's minimum.
template <typename Block, int kLevels>
void quantize_offset(const float* x, Block* out) {
  float lo, hi;
  min_max(x, &lo, &hi);
  const float d = (hi - lo) / static_cast<float>(kLevels - 1);
  const float id = reciprocal_or_zero(d);
  uint8_t q[kQK];
  for (int j = 0; j < kQK; ++j) q[j] = trunc_clip((x[j] - lo) * id + 0.5f, kLevels - 1);
  out->d = f32_to_fp16(d);
  out->m = f32_to_fp16(lo);
  pack_nibbles(q, out->qs);
  if constexpr (kLevels == 32) pack_high_bits(q, out->qh);
}

void quantize_q8_0(const float* x, BlockQ8_0* out) {
  float amax = 0.f;
  for (int j = 0; j < kQK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / 127.f;
  const float id = reciprocal_or_zero(d);
  for (int j = 0; j < kQK; ++j) out->qs[j] = static_cast<int8_t>(std::round(x[j] * id));  // half away from 0
  out->d = f32_to_fp16(d);
}

// Round to nearest even on the upper 16 bits; NaNs stay NaN (quiet).
uint16_t f32_to_bf16(float f) {
  uint32_t n;
  std::memcpy(&n, &f, 4);
  if ((n & 0x7fffffffu) > 0x7f800000u) n = (n & 0xffff0000u) | (64u << 16);
  return static_cast<uint16_t>((static_cast<uint64_t>(n) + 0x7fffu + ((n >> 16) & 1u)) >> 16);
}

template <typename Block, typename Fn>
void per_block(const float* src, void* dst, size_t n, size_t block, Fn fn) {
  auto* out = static_cast<Block*>(dst);
  for (size_t b = 0; b < n / block; ++b) fn(src + b * block, out + b);
}


// The search-based formats write type_size bytes per 256 (or 32) elements through a void pointer.
void per_block_bytes(const float* src, void* dst, size_t n, size_t block, size_t type_size,
                     void (*fn)(const float*, void*)) {
  auto* out = static_cast<uint8_t*>(dst);
  for (size_t b = 0; b < n / block; ++b) fn(src + b * block, out + b * type_size);
}

constexpr DType kQuantizable[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0,   DType::Q4_1,
                                  DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K,   DType::Q3_K,
                                  DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::IQ4_NL, DType::IQ4_XS};

}  // namespace

bool can_quantize(DType t) {
  for (DType q : kQuantizable)
    if (q == t) return true;
  return false;
}

std::string quantizable_dtypes() {
  std::string s;
  for (DType q : kQuantizable) s += (s.empty() ? "" : ", ") + std::string(dtype_name(q));
  return s;
}

void quantize_row(DType t, const float* src, void* dst, size_t n) {
  WREN_CHECK(can_quantize(t), UnsupportedError, "cannot quantize to ", dtype_name(t), " (can: ", quantizable_dtypes(), ")");
  const DTypeInfo& info = dtype_info(t);
  WREN_CHECK(n % info.block_size == 0, InvalidArgument, "quantize_row: ", n, " elements is not a multiple of the ",
             info.name, " block size ", info.block_size);
  for (size_t i = 0; i < n; ++i)
    WREN_CHECK(std::isfinite(src[i]), InvalidArgument, "quantize_row: element ", i, " is ", src[i],
               " (only finite values can be quantized)");
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * sizeof(float)); return;
    case DType::F16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) h[i] = f32_to_fp16(src[i]);
      return;
    }
    case DType::BF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) h[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::Q4_0: return per_block<BlockQ4_0>(src, dst, n, kQK, quantize_symmetric<BlockQ4_0, 8>);
    case DType::Q5_0: return per_block<BlockQ5_0>(src, dst, n, kQK, quantize_symmetric<BlockQ5_0, 16>);
    case DType::Q4_1: return per_block<BlockQ4_1>(src, dst, n, kQK, quantize_offset<BlockQ4_1, 16>);
    case DType::Q5_1: return per_block<BlockQ5_1>(src, dst, n, kQK, quantize_offset<BlockQ5_1, 32>);
    case DType::Q8_0: return per_block<BlockQ8_0>(src, dst, n, kQK, quantize_q8_0);
    case DType::Q2_K: return per_block_bytes(src, dst, n, kQKK, sizeof(BlockQ2_K), quantize_block_q2_k);
    case DType::Q3_K: return per_block_bytes(src, dst, n, kQKK, sizeof(BlockQ3_K), quantize_block_q3_k);
    case DType::Q4_K: return per_block_bytes(src, dst, n, kQKK, sizeof(BlockQ4_K), quantize_block_q4_k);
    case DType::Q5_K: return per_block_bytes(src, dst, n, kQKK, sizeof(BlockQ5_K), quantize_block_q5_k);
    case DType::Q6_K: return per_block_bytes(src, dst, n, kQKK, sizeof(BlockQ6_K), quantize_block_q6_k);
    case DType::IQ4_NL: return per_block_bytes(src, dst, n, kQK, sizeof(BlockIQ4_NL), quantize_block_iq4_nl);
    case DType::IQ4_XS: return per_block_bytes(src, dst, n, kQKK, sizeof(BlockIQ4_XS), quantize_block_iq4_xs);
    default: break;
  }
}

}  // namespace wren
