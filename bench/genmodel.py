"""A Llama-shaped ~1.1B model with random weights, written as GGUF with gguf-py (for benchmarks).

Dimensions are TinyLlama-1.1B's (dim 2048, 22 layers, 32 heads, 4 KV heads, FFN 5632, rope base
10000) except the vocabulary: the tokenizer metadata is copied from the SmolLM2 GGUF, so the
vocabulary is SmolLM2's 49152 tokens (TinyLlama has 32000). The output head is a separate
``output.weight`` (not tied). Matrices are stored in the requested type: quantized with
``gguf.quants.quantize`` for the types it has (F16, Q4_0, Q8_0, ...), else random valid blocks
(tests/python/quant_blocks.py) — the lattice I-quants (IQ1_S ... IQ3_S), which llama.cpp's quantizer
only writes with an importance matrix; norms are F32, as llama.cpp's converter writes them.

Files are cached in ~/.cache/wrenlm/bench/ and written once, streaming: rows are generated,
quantized and appended a chunk at a time, so memory stays bounded (a few tens of MB) whatever
the model size. A file is written under a temporary name and renamed when complete.

    python bench/genmodel.py Q4_0 [Q8_0 F16]      # prints the paths
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

CACHE_DIR = Path(os.environ.get("WRENLM_BENCH_CACHE", Path.home() / ".cache" / "wrenlm" / "bench"))

HP = dict(
    dim=2048,
    n_layers=22,
    n_heads=32,
    n_kv_heads=4,
    ffn=5632,
    vocab=49152,
    rope_base=10000.0,
    norm_eps=1e-5,
    n_ctx_train=4096,
)
FORMAT_VERSION = 1  # bump when the generated content changes, to invalidate cached files
CHUNK_ELEMS = 4 * 2**20  # float32 values generated + quantized per step (16 MiB)


def _qtype(name: str):
    from gguf import GGMLQuantizationType

    return GGMLQuantizationType[name.upper()]


def _file_type(name: str) -> int:
    from gguf import LlamaFileType

    name = name.upper()
    if name == "F32":
        return int(LlamaFileType.ALL_F32)
    return int(getattr(LlamaFileType, f"MOSTLY_{name}", LlamaFileType.GUESSED))


def _random_blocks():
    """tests/python/quant_blocks.py: random valid blocks for the types gguf-py cannot quantize (the
    lattice I-quants, whose llama.cpp quantizer also wants an importance matrix)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "python"))
    import quant_blocks

    return quant_blocks


def tensor_plan(hp: dict = HP) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, numpy shape (rows, cols), role) for every tensor, llama.cpp names."""
    d, f, v = hp["dim"], hp["ffn"], hp["vocab"]
    kv = d // hp["n_heads"] * hp["n_kv_heads"]
    plan = [("token_embd.weight", (v, d), "matrix")]
    for i in range(hp["n_layers"]):
        b = f"blk.{i}."
        plan += [
            (b + "attn_norm.weight", (d,), "norm"),
            (b + "attn_q.weight", (d, d), "matrix"),
            (b + "attn_k.weight", (kv, d), "matrix"),
            (b + "attn_v.weight", (kv, d), "matrix"),
            (b + "attn_output.weight", (d, d), "matrix"),
            (b + "ffn_norm.weight", (d,), "norm"),
            (b + "ffn_gate.weight", (f, d), "matrix"),
            (b + "ffn_up.weight", (f, d), "matrix"),
            (b + "ffn_down.weight", (d, f), "matrix"),
        ]
    plan += [("output_norm.weight", (d,), "norm"), ("output.weight", (v, d), "matrix")]
    return plan


def model_path(qtype: str) -> Path:
    return CACHE_DIR / f"llama-1.1b-random-v{FORMAT_VERSION}.{qtype.upper()}.gguf"


_TOKENIZER_KV: dict[str, list] = {}  # source path -> [(key, value, type, sub_type)], read once


def _copy_tokenizer(writer, source: Path) -> None:
    from gguf import GGUFReader, GGUFValueType

    if str(source) not in _TOKENIZER_KV:
        r = GGUFReader(str(source))
        kvs = []
        for key, field in r.fields.items():
            if key.startswith("tokenizer."):
                types = field.types
                sub = types[1] if types[0] == GGUFValueType.ARRAY and len(types) > 1 else None
                kvs.append((key, field.contents(), types[0], sub))
        tokens = r.fields.get("tokenizer.ggml.tokens")
        if tokens is None or len(tokens.data) != HP["vocab"]:
            raise RuntimeError(f"{source}: expected a {HP['vocab']}-token vocabulary in tokenizer.ggml.tokens")
        _TOKENIZER_KV[str(source)] = kvs
    for key, val, vtype, sub in _TOKENIZER_KV[str(source)]:
        writer.add_key_value(key, val, vtype, sub_type=sub)


def generate(qtype: str, path: Path | None = None, *, tokenizer_source: Path, seed: int = 1234, hp: dict = HP,
             log=print) -> Path:
    """Writes the model (if it is not cached yet) and returns its path. The tokenizer metadata is
    copied from tokenizer_source (a GGUF file: SmolLM2's)."""
    import gguf
    from gguf import GGMLQuantizationType, GGUFWriter
    from gguf.quants import quantize

    qtype = qtype.upper()
    path = Path(path) if path is not None else model_path(qtype)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    mq = _qtype(qtype)
    block, type_size = gguf.GGML_QUANT_SIZES[mq]
    qb = _random_blocks()
    random_blocks = None if qtype in qb.QUANTIZED_BY_GGUF_PY else qb.random_blocks

    plan = tensor_plan(hp)
    w = GGUFWriter(str(tmp), "llama")
    w.add_name(f"wrenlm bench llama-1.1b random {qtype}")
    w.add_context_length(hp["n_ctx_train"])
    w.add_embedding_length(hp["dim"])
    w.add_block_count(hp["n_layers"])
    w.add_feed_forward_length(hp["ffn"])
    w.add_head_count(hp["n_heads"])
    w.add_head_count_kv(hp["n_kv_heads"])
    w.add_rope_freq_base(hp["rope_base"])
    w.add_layer_norm_rms_eps(hp["norm_eps"])
    w.add_rope_dimension_count(hp["dim"] // hp["n_heads"])
    w.add_vocab_size(hp["vocab"])
    w.add_file_type(_file_type(qtype))
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _copy_tokenizer(w, Path(tokenizer_source))

    total = 0
    for name, shape, role in plan:
        if role == "norm":
            w.add_tensor_info(name, shape, np.dtype(np.float32), 4 * shape[0], raw_dtype=GGMLQuantizationType.F32)
            total += 4 * shape[0]
        else:
            rows, cols = shape
            if cols % block:
                raise ValueError(f"{name}: {cols} columns is not a multiple of the {qtype} block ({block})")
            nbytes = rows * (cols // block) * type_size
            w.add_tensor_info(name, shape, np.dtype(np.float32), nbytes, raw_dtype=mq)
            total += nbytes
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    fout = w.fout[0]
    w.write_padding(fout, fout.tell())

    log(f"[genmodel] writing {path.name}: {len(plan)} tensors, {total / 2**30:.2f} GiB ({qtype})")
    rng = np.random.default_rng(seed)
    t0 = last = time.perf_counter()
    done = 0
    for k, (name, shape, role) in enumerate(plan):
        start = fout.tell()
        if role == "norm":
            # Around 1 like trained RMSNorm gains, with some spread so no kernel can skip them.
            (1.0 + 0.1 * rng.standard_normal(shape[0], dtype=np.float32)).astype(np.float32).tofile(fout)
            nbytes = 4 * shape[0]
        else:
            rows, cols = shape
            std = 0.02 if not name.startswith("token_embd") else 1.0  # embeddings: unit-scale rows
            step = max(1, CHUNK_ELEMS // cols)
            for r0 in range(0, rows, step):
                n = min(step, rows - r0)
                if random_blocks is not None:  # block scales ~ std / 50: weights of about std
                    random_blocks(gguf, qtype, n, cols, rng, scale=std / 50).tofile(fout)
                    continue
                x = rng.standard_normal((n, cols), dtype=np.float32)
                x *= std
                quantize(x, mq).tofile(fout)
            nbytes = fout.tell() - start
        expect = w.tensors[0].pop(name).nbytes
        if nbytes != expect:
            raise RuntimeError(f"{name}: wrote {nbytes} bytes, expected {expect}")
        w.write_padding(fout, nbytes)
        done += nbytes
        now = time.perf_counter()
        if now - last > 5 or k == len(plan) - 1:
            last = now
            el = now - t0
            log(
                f"[genmodel]   {k + 1}/{len(plan)} tensors, {done / 2**30:.2f}/{total / 2**30:.2f} GiB, "
                f"{el:.0f}s elapsed, ~{el / max(done, 1) * (total - done):.0f}s left"
            )
    w.close()
    os.replace(tmp, path)
    log(f"[genmodel] done: {path} in {time.perf_counter() - t0:.0f}s")
    return path


def main(argv: list[str]) -> int:
    types = argv or ["Q4_0"]
    try:  # the installed package; a source checkout's python/ only when none is installed
        from wrenlm import hub  # the tokenizer comes from the default model in wrenlm's cache
    except ImportError:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
        from wrenlm import hub

    source = hub.resolve_model(None)
    for t in types:
        print(generate(t, tokenizer_source=source, log=lambda s: print(s, file=sys.stderr, flush=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
