"""GGUF files written by llama.cpp's own quantizer, as users download them.

llama.cpp's quantizer picks a type per tensor (its "mixes"): Q4_K_M keeps some attention and FFN
matrices in Q6_K, every mix stores output.weight in Q6_K or better, rows whose width is not a
multiple of 256 fall back to Q5_0/Q5_1/Q8_0. Files written by gguf-py with one type for every
matrix (bench/genmodel.py) measure one kernel; these measure what users run. The quantizer is
llama-cpp-python's `llama_model_quantize` (install it with `bash bench/build_llama_cpp.sh`).

Outputs are cached beside the source as <source stem>.<MIX>.llama-cpp.gguf, written under a
temporary name and renamed when complete.

    python bench/llama_quant.py SOURCE.gguf Q4_K_M [Q5_K_M Q6_K ...]   # prints the paths
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from pathlib import Path

# llama.cpp's mixes (the names after LLAMA_FTYPE_MOSTLY_ in llama.h).
MIXES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q2_K_S", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S",
         "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS", "TQ1_0", "TQ2_0",
         # The lattice I-quant mixes; llama.cpp refuses IQ1_*, IQ2_XXS/XS/S without an importance matrix.
         "IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M", "IQ2_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_S", "IQ1_M"]


def output_path(source: Path, mix: str, out_dir: Path | None = None) -> Path:
    return (out_dir or source.parent) / f"{source.stem}.{mix.upper()}.llama-cpp.gguf"


def quantize(source: Path, mix: str, log=print, allow_requantize: bool = False, out_dir: Path | None = None) -> Path:
    """The llama.cpp-quantized copy of `source` (an F32/F16/BF16 GGUF; any GGUF with allow_requantize)
    in `mix`, made once, beside the source or in out_dir."""
    mix = mix.upper()
    if mix not in MIXES:
        raise SystemExit(f"unknown mix {mix!r}; known: {', '.join(MIXES)}")
    out = output_path(Path(source), mix, out_dir)
    if out.exists():
        return out
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{mix}")
    params.nthread = os.cpu_count() or 1
    params.allow_requantize = allow_requantize
    tmp = out.with_name(out.name + ".tmp")
    log(f"llama.cpp quantizer: {source} -> {out.name} ...")
    t0 = time.time()
    rc = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params))
    if rc != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"llama_model_quantize({source}, {mix}) failed with {rc}")
    tmp.rename(out)
    log(f"  {out.stat().st_size / 2**20:.0f} MiB in {time.time() - t0:.0f} s")
    return out


def cache_dir() -> Path:
    """Where bench/ keeps the files it makes (as bench/genmodel.py)."""
    import genmodel

    genmodel.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    return genmodel.CACHE_DIR


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    for m in sys.argv[2:]:
        print(quantize(Path(sys.argv[1]), m, log=lambda s: print(s, file=sys.stderr)))
