"""Quantizing a model into a GGUF file with one of llama.cpp's mixes, using wrenlm's own quantizers.

    >>> import wrenlm
    >>> wrenlm.quantize("model-f16.gguf", "model-q4_k_m.gguf", type="Q4_K_M")

The source may be a GGUF file of any type wrenlm reads (F32/F16/BF16, or already quantized: it is
dequantized first) or a Hugging Face model folder. Each tensor's type follows llama.cpp's rules for
the mix (``types()`` lists them), so the output has the same per-tensor types as llama-quantize's.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, Optional, TextIO, Union

from wrenlm._args import LoraArg, check_int, lora_specs
from wrenlm._loader import load_core

PathLike = Union[str, "os.PathLike[str]"]

#: Progress callback: (tensor index, tensor count, name, source type, output type, source bytes done,
#: source bytes in all, output bytes written).
ProgressFn = Callable[[int, int, str, str, str, int, int, int], None]


def types() -> list[tuple[str, str]]:
    """The quantization mixes ``quantize`` writes: (name, description), in llama-quantize's order."""
    return [(name, f"{about}; mostly {base}") for name, _ftype, base, about in load_core().quant_mixes()]


class _Progress:
    """One status line on a terminal (rewritten in place), else a line per tensor."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.last = -1

    def __call__(self, i: int, n: int, name: str, src: str, dst: str, done: int, total: int, written: int) -> None:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = done / elapsed / 2**20
        line = (f"[{i + 1}/{n}] {name} {src} -> {dst}  {100.0 * done / max(total, 1):5.1f}%  "
                f"{rate:6.1f} MB/s  {written / 2**20:8.1f} MiB written")
        if self.tty:
            self.stream.write("\r" + line[:160].ljust(100))
        elif i != self.last:
            self.stream.write(line + "\n")
        self.last = i
        self.stream.flush()

    def close(self, size: int) -> None:
        elapsed = time.perf_counter() - self.start
        end = "\n" if self.tty else ""
        self.stream.write(f"{end}wrote {size / 2**20:.1f} MiB in {elapsed:.1f} s\n")
        self.stream.flush()


def quantize(src: PathLike, dst: PathLike, type: str = "Q4_K_M", *, n_threads: Optional[int] = None,
             progress: Union[bool, ProgressFn] = True, force: bool = False, lora: LoraArg = None) -> int:
    """Writes src quantized with the mix ``type`` to the GGUF file dst, with LoRA adapters merged in.

    Args:
        src: a GGUF file or a Hugging Face model folder.
        dst: the output GGUF file; written to ``dst + ".tmp"`` and renamed when complete, so an error
            or Ctrl-C (KeyboardInterrupt) never leaves a partial file behind.
        type: a mix name from ``types()`` (case-insensitive; Q4_K, Q5_K, Q3_K mean their _M mixes).
        n_threads: quantization threads (default: the physical cores).
        progress: True prints progress (tensor i/n, MB/s) on stderr; False is silent; a callable
            receives the values of ``ProgressFn``.
        force: overwrite dst if it exists (otherwise FileExistsError).
        lora: adapters to merge into the weights, as for ``Model`` (a path, a (path, scale) pair or a
            list of them; PEFT folders or llama.cpp GGUF adapters). Each adapted matrix becomes
            W + scale * (alpha / r) * B A, computed in float32 from the dequantized W, then quantized
            to its type in the mix; the output needs no adapter at run time.

    Returns:
        The output file's size in bytes.

    Raises:
        ValueError: unknown type (the message lists the valid ones), bad n_threads, dst == src.
        FileNotFoundError: src does not exist.
        FileExistsError: dst exists and force is False.
        wrenlm.FormatError / wrenlm.UnsupportedError: src is not a model wrenlm can read.

    Example:
        >>> wrenlm.quantize("smollm2-f16.gguf", "smollm2-q8_0.gguf", type="Q8_0", progress=False)
    """
    core = load_core()
    src_s, dst_s = os.fspath(src), os.fspath(dst)
    valid = [name for name, *_ in core.quant_mixes()]
    aliases = {"Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M", "Q3_K": "Q3_K_M"}
    if not isinstance(type, str) or aliases.get(type.upper(), type.upper()) not in valid:
        raise ValueError(f"unknown quantization type {type!r} (valid: {', '.join(valid)})")
    n_threads = check_int("n_threads", n_threads, minimum=1, maximum=core.MAX_THREADS, allow_none=True)
    loras = lora_specs(lora)
    if not os.path.exists(src_s):
        raise FileNotFoundError(f"{src_s}: no such file or folder")
    if os.path.exists(dst_s):
        if os.path.samefile(src_s, dst_s):
            raise ValueError(f"{dst_s}: the output would overwrite the source")
        if not force:
            raise FileExistsError(f"{dst_s} exists (pass force=True, or --force, to overwrite it)")
        if os.path.isdir(dst_s):
            raise ValueError(f"{dst_s} is a folder; the output is one GGUF file")
    show = _Progress(sys.stderr) if progress is True else None
    callback = show if show is not None else (progress if callable(progress) else None)
    size = int(core.quantize_model(src_s, dst_s, type=type, n_threads=n_threads or 0, lora=loras,
                                     callback=callback))
    if show is not None:
        show.close(size)
    return size
