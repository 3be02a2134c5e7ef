"""Random valid blocks of the ggml weight types, for the dequantization and model tests.

Blocks are random bytes (so every bit of every quant, scale and sign field is exercised) with the
fields that could overflow or be non-finite overwritten: the fp16 scales get small finite values, the
MXFP4/NVFP4 exponents a sane range. For the grid formats the grid and sign-pattern index fields walk a
random permutation of every entry, so a tensor of at least GRID_BLOCKS[name] blocks uses each grid
entry and (IQ2_XXS, IQ2_XS, IQ3_XXS) each of the 128 sign patterns at least once. Byte offsets are the
layouts gguf-py's dequantizers read (gguf/quants.py).
"""

from __future__ import annotations

import numpy as np

# Types whose blocks gguf-py's quantizer writes from random floats (it has no quantizer for the others).
QUANTIZED_BY_GGUF_PY = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1")

# Byte offsets of each format's fp16 scale fields in a block.
FP16_FIELDS = {
    "Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,),
    "IQ4_NL": (0,), "IQ4_XS": (0,), "IQ2_XXS": (0,), "IQ2_XS": (0,), "IQ2_S": (0,), "IQ3_XXS": (0,),
    "IQ3_S": (0,), "IQ1_S": (0,), "TQ1_0": (52,), "TQ2_0": (64,),
}
SPECIAL = ("IQ1_M", "MXFP4", "NVFP4")  # scales stored otherwise (see random_blocks)

# Every type gguf-py 0.19 can dequantize that wrenlm supports, and the ones added with issue 12.
ALL_TYPES = [*QUANTIZED_BY_GGUF_PY, *FP16_FIELDS, *SPECIAL]
NEW_TYPES = ["Q2_K", "Q3_K", "Q5_K", "IQ4_NL", "IQ4_XS", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S",
             "IQ1_S", "IQ1_M", "TQ1_0", "TQ2_0", "MXFP4", "NVFP4"]

# Grid formats: (grid entries, entries per block); a tensor of GRID_BLOCKS blocks uses every entry.
GRIDS = {"IQ2_XXS": (256, 32), "IQ2_XS": (512, 32), "IQ2_S": (1024, 32), "IQ3_XXS": (256, 64),
         "IQ3_S": (512, 64), "IQ1_S": (2048, 32), "IQ1_M": (2048, 32)}
GRID_BLOCKS = {name: -(-n // per) for name, (n, per) in GRIDS.items()}


def _spanning(rng: np.random.Generator, n_values: int, count: int) -> np.ndarray:
    """count indices (uint32) that contain every value below n_values once count >= n_values."""
    return np.resize(rng.permutation(n_values), count).astype(np.uint32)


def _put_u16(raw: np.ndarray, offset: int, values: np.ndarray) -> None:
    raw[:, offset:offset + 2 * values.shape[1]] = values.astype("<u2").view(np.uint8).reshape(len(raw), -1)


def _put_u32(raw: np.ndarray, offset: int, values: np.ndarray) -> None:
    raw[:, offset:offset + 4 * values.shape[1]] = values.astype("<u4").view(np.uint8).reshape(len(raw), -1)


def _get_u16(raw: np.ndarray, offset: int, n: int) -> np.ndarray:
    return raw[:, offset:offset + 2 * n].copy().view("<u2").astype(np.uint32)


def _get_u32(raw: np.ndarray, offset: int, n: int) -> np.ndarray:
    return raw[:, offset:offset + 4 * n].copy().view("<u4").astype(np.uint32)


def _span_grid(raw: np.ndarray, name: str, rng: np.random.Generator) -> None:
    """Overwrites the grid (and sign-pattern) index fields of raw (n_blocks, type_size) in place."""
    nb = len(raw)
    n_grid, per = GRIDS[name]
    idx = _spanning(rng, n_grid, nb * per).reshape(nb, per)
    sign_idx = _spanning(rng, 128, nb * 32).reshape(nb, 32)
    if name == "IQ2_XXS":  # group g: 4 index bytes at 2+8g, uint32 at 6+8g (signs 7 bits each, ls on top)
        for g in range(8):
            raw[:, 2 + 8 * g:6 + 8 * g] = idx[:, 4 * g:4 * g + 4]
            w = _get_u32(raw, 6 + 8 * g, 1)[:, 0] & 0xF0000000
            for k in range(4):
                w |= sign_idx[:, 4 * g + k] << (7 * k)
            _put_u32(raw, 6 + 8 * g, w[:, None])
    elif name == "IQ2_XS":  # 32 uint16 at 2: index bits 0..8, sign pattern 9..15
        _put_u16(raw, 2, idx | sign_idx << 9)
    elif name == "IQ2_S":  # index low bits at 2, bits 8..9 in qh at 66 (2 bits per entry)
        raw[:, 2:34] = idx & 0xFF
        raw[:, 66:74] = ((idx >> 8).reshape(nb, 8, 4) << np.array([0, 2, 4, 6])).sum(axis=-1)
    elif name == "IQ3_XXS":  # 64 index bytes at 2; 8 uint32 at 66: 4 sign patterns of 7 bits, ls on top
        raw[:, 2:66] = idx
        w = _get_u32(raw, 66, 8) & 0xF0000000
        for k in range(4):
            w |= sign_idx[:, k::4] << (7 * k)
        _put_u32(raw, 66, w)
    elif name == "IQ3_S":  # index low bits at 2, bit 8 in qh at 66 (1 bit per entry)
        raw[:, 2:66] = idx & 0xFF
        raw[:, 66:74] = ((idx >> 8).reshape(nb, 8, 8) << np.arange(8)).sum(axis=-1)
    elif name == "IQ1_S":  # index low bits at 2; uint16 qh at 34: 3 high bits per entry, ls and delta on top
        raw[:, 2:34] = idx & 0xFF
        qh = _get_u16(raw, 34, 8) & 0xF000
        qh |= ((idx >> 8).reshape(nb, 8, 4) << np.array([0, 3, 6, 9])).sum(axis=-1).astype(np.uint32)
        _put_u16(raw, 34, qh)
    elif name == "IQ1_M":  # index low bits at 0; qh at 32: a nibble per entry, 3 high bits + delta bit
        raw[:, 0:32] = idx & 0xFF
        nib = (raw[:, 32:48, None] >> np.array([0, 4], dtype=np.uint8)).reshape(nb, 32) & 0x8
        nib |= (idx >> 8).astype(np.uint8)
        raw[:, 32:48] = nib[:, 0::2] | nib[:, 1::2] << 4


def random_blocks(gguf, name: str, n_rows: int, n_cols: int, rng: np.random.Generator,
                  scale: float = 0.05) -> np.ndarray:
    """Raw bytes (n_rows, row_bytes) of a tensor of this type. `scale` sets the size of the block
    scales (fp16 scales ~ N(0, scale^2); MXFP4/NVFP4/IQ1_M: near scale in magnitude), so weights
    grow linearly with it."""
    qt = getattr(gguf.GGMLQuantizationType, name)
    if name in QUANTIZED_BY_GGUF_PY:
        x = (rng.standard_normal((n_rows, n_cols)) * 60 * scale).astype(np.float32)
        raw = gguf.quants.quantize(x, qt)
        return np.ascontiguousarray(raw).view(np.uint8).reshape(n_rows, -1)
    block, size = gguf.GGML_QUANT_SIZES[qt]
    nb = n_rows * n_cols // block
    raw = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)
    if name in FP16_FIELDS:
        for off in FP16_FIELDS[name]:
            raw[:, off:off + 2] = (rng.standard_normal((nb, 1)) * scale).astype("<f2").view(np.uint8)
    elif name == "IQ1_M":  # the fp16 d is the top nibbles of the 4 uint16 scale words at 48
        d = (np.abs(rng.standard_normal(nb)) * scale + 1e-3).astype("<f2").view("<u2").astype(np.uint32)
        words = _get_u16(raw, 48, 4) & 0x0FFF
        words |= ((d[:, None] >> np.array([0, 4, 8, 12], dtype=np.uint32)) & 0xF) << 12
        _put_u16(raw, 48, words)
    elif name == "MXFP4":  # E8M0 byte 0: 2^(e - 128), a few octaves around scale
        e = 128 + round(float(np.log2(scale))) + rng.integers(-3, 4, size=nb)
        raw[:, 0] = np.clip(e, 0, 255)
        raw[:2, 0] = [0, 1][:nb]  # the two subnormal scales
    elif name == "NVFP4":  # 4 unsigned E4M3 bytes (2^(exp - 7) * (1 + man/8)) / 2, bit 7 unused
        exp = 8 + round(float(np.log2(scale))) + rng.integers(-3, 4, size=(nb, 4))
        raw[:, 0:4] = (raw[:, 0:4] & 0x87) | (np.clip(exp, 0, 15) << 3).astype(np.uint8)
        raw[0, 0:4] = [0x7F, 0x00, 0x05, 0x85]  # NaN (reads as 0), zero, a subnormal, bit 7 set
    if name in GRIDS:
        _span_grid(raw, name, rng)
    return raw.reshape(n_rows, -1)


def block_size(gguf, name: str) -> int:
    """Elements per block of the type."""
    return gguf.GGML_QUANT_SIZES[getattr(gguf.GGMLQuantizationType, name)][0]
