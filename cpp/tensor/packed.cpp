#include "tensor/packed.h"

#include <algorithm>
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

namespace {

// File layout of the three block types: fp16 d at byte 0, Q4_1's fp16 m at byte 2, then the quants.
template <DType T>
void pack_groups_t(const PackedMatrix& p, const uint8_t* src, size_t src_stride, int64_t g0, int64_t g1,
                   uint8_t* dst) {
  constexpr size_t kBlock = T == DType::Q4_0 ? sizeof(BlockQ4_0) : T == DType::Q4_1 ? sizeof(BlockQ4_1) : sizeof(BlockQ8_0);
  constexpr size_t kQuants = T == DType::Q4_1 ? 4 : 2;   // offset of the quants in a file block
  constexpr int kChunks = T == DType::Q8_0 ? 8 : 4;      // 64-byte chunks per tile
  for (int64_t g = g0; g < g1; ++g) {
    const int rows = static_cast<int>(std::min<int64_t>(kPackRows, p.rows - g * kPackRows));
    for (int64_t b = 0; b < p.n_blocks; ++b) {
      uint8_t* t = dst + (static_cast<size_t>(g) * static_cast<size_t>(p.n_blocks) + static_cast<size_t>(b)) * p.tile_bytes;
      if (rows < kPackRows) std::memset(t, 0, p.tile_bytes);  // zero rows past the end
      uint8_t* q = t + p.scale_bytes;
      for (int r = 0; r < rows; ++r) {
        const uint8_t* blk = src + static_cast<size_t>(g * kPackRows + r) * src_stride + static_cast<size_t>(b) * kBlock;
        std::memcpy(t + 2 * r, blk, 2);                                            // d
        if constexpr (T == DType::Q4_1) std::memcpy(t + kScaleRow + 2 * r, blk + 2, 2);  // m
        for (int c = 0; c < kChunks; ++c) {
          uint32_t word;
          std::memcpy(&word, blk + kQuants + 4 * c, 4);
          if constexpr (T == DType::Q8_0) word ^= 0x80808080u;  // signed -> unsigned (q + 128)
          std::memcpy(q + 64 * c + 4 * r, &word, 4);
        }
      }
    }
  }
}

}  // namespace

void pack_groups(const PackedMatrix& p, const uint8_t* src, size_t src_stride, int64_t g0, int64_t g1, uint8_t* dst) {
  switch (p.dtype) {
    case DType::Q4_0: return pack_groups_t<DType::Q4_0>(p, src, src_stride, g0, g1, dst);
    case DType::Q4_1: return pack_groups_t<DType::Q4_1>(p, src, src_stride, g0, g1, dst);
    default: return pack_groups_t<DType::Q8_0>(p, src, src_stride, g0, g1, dst);
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
