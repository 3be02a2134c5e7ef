#include "tensor/packed.h"

#include <cstring>

#include "tensor/blocks.h"
#include "tensor/fp16.h"
#include "util/errors.h"

namespace wren {
namespace {

constexpr size_t kScaleRow = kPackRows * sizeof(uint16_t);  // one fp16 per row of the group

}  // namespace

bool packable(DType t) { return t == DType::Q4_0 || t == DType::Q4_1 || t == DType::Q8_0; }

PackedMatrix packed_layout(DType t, int64_t rows, int64_t cols) {
  WREN_CHECK(packable(t), InvalidArgument, "packed_layout: ", dtype_name(t), " is not a packable type");
  WREN_CHECK(rows > 0 && cols > 0 && cols % kQK == 0, InvalidArgument, "packed_layout: bad shape ", rows, "x", cols);
  PackedMatrix p;
  p.dtype = t;
  p.rows = rows;
  p.cols = cols;
  p.n_groups = (rows + kPackRows - 1) / kPackRows;
  p.n_blocks = cols / kQK;
  p.scale_bytes = t == DType::Q4_1 ? 2 * kScaleRow : kScaleRow;
  const size_t quant_bytes = t == DType::Q8_0 ? kPackRows * kQK : kPackRows * kQK / 2;
  p.tile_bytes = p.scale_bytes + quant_bytes;
  return p;
}

size_t packed_bytes(const PackedMatrix& p) {
  return static_cast<size_t>(p.n_groups) * static_cast<size_t>(p.n_blocks) * p.tile_bytes;
}

void pack_groups(const PackedMatrix& p, const uint8_t* src, size_t src_stride, int64_t g0, int64_t g1, uint8_t* dst) {
  const int chunks = p.dtype == DType::Q8_0 ? kQK / 4 : kQK / 8;  // 64-byte chunks per tile
  for (int64_t g = g0; g < g1; ++g) {
    for (int64_t b = 0; b < p.n_blocks; ++b) {
      uint8_t* t = dst + (static_cast<size_t>(g) * static_cast<size_t>(p.n_blocks) + static_cast<size_t>(b)) * p.tile_bytes;
      std::memset(t, 0, p.tile_bytes);
      auto* d = reinterpret_cast<uint16_t*>(t);
      auto* m = reinterpret_cast<uint16_t*>(t + kScaleRow);
      uint8_t* q = t + p.scale_bytes;
      for (int r = 0; r < kPackRows; ++r) {
        const int64_t row = g * kPackRows + r;
        if (row >= p.rows) break;  // zero padding
        const uint8_t* rp = src + static_cast<size_t>(row) * src_stride;
        switch (p.dtype) {
          case DType::Q4_0: {
            BlockQ4_0 blk;
            std::memcpy(&blk, rp + static_cast<size_t>(b) * sizeof(BlockQ4_0), sizeof blk);
            std::memcpy(&d[r], &blk.d, 2);
            for (int c = 0; c < chunks; ++c) std::memcpy(q + 64 * c + 4 * r, blk.qs + 4 * c, 4);
            break;
          }
          case DType::Q4_1: {
            BlockQ4_1 blk;
            std::memcpy(&blk, rp + static_cast<size_t>(b) * sizeof(BlockQ4_1), sizeof blk);
            std::memcpy(&d[r], &blk.d, 2);
            std::memcpy(&m[r], &blk.m, 2);
            for (int c = 0; c < chunks; ++c) std::memcpy(q + 64 * c + 4 * r, blk.qs + 4 * c, 4);
            break;
          }
          default: {  // Q8_0
            BlockQ8_0 blk;
            std::memcpy(&blk, rp + static_cast<size_t>(b) * sizeof(BlockQ8_0), sizeof blk);
            std::memcpy(&d[r], &blk.d, 2);
            for (int c = 0; c < chunks; ++c)
              for (int j = 0; j < 4; ++j) q[64 * c + 4 * r + j] = static_cast<uint8_t>(blk.qs[4 * c + j]) ^ 0x80u;
            break;
          }
        }
      }
    }
  }
}

void dequantize_packed_rows(const PackedMatrix& w, int64_t r0, int64_t count, float* out) {
  for (int64_t i = 0; i < count; ++i) {
    const int64_t row = r0 + i, g = row / kPackRows;
    const int r = static_cast<int>(row % kPackRows);
    float* o = out + i * w.cols;
    for (int64_t b = 0; b < w.n_blocks; ++b, o += kQK) {
      const uint8_t* t = w.tile(g, b);
      uint16_t dh, mh = 0;
      std::memcpy(&dh, t + 2 * r, 2);
      if (w.dtype == DType::Q4_1) std::memcpy(&mh, t + kScaleRow + 2 * r, 2);
      const float d = fp16_to_f32(dh), mw = packed_offset(w.dtype, d, fp16_to_f32(mh));
      const uint8_t* q = t + w.scale_bytes;
      for (int e = 0; e < kQK; ++e) o[e] = d * static_cast<float>(packed_quant(w.dtype, q, r, e)) + mw;
    }
  }
}

}  // namespace wren
