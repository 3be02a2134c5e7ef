"""Malformed model files, one per class of damage, and the error each must raise.

Hand-written GGUF and safetensors encoders let a test break any field on purpose. The cases cover
the classes behind the published GGUF parser vulnerabilities (counts, string lengths, array element
types, dimensions, element-count and byte-size overflow, alignment, overlapping offsets, type ids)
and the safetensors header's equivalents. They are the source of the committed regression corpus in
tests/corpus/malformed (regenerate it with `python tests/python/malformed_files.py`; a test checks
that the committed files are what this module writes) and of the reader tests.
"""

from __future__ import annotations

import json
import re
import struct
import sys
from pathlib import Path
from typing import Callable

import numpy as np

CORPUS_DIR = Path(__file__).resolve().parents[1] / "corpus" / "malformed"


# ---- GGUF ----------------------------------------------------------------------------------------
def s(text: str | bytes) -> bytes:
    """A GGUF string: u64 length, then the bytes."""
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(b)) + b


def kv(key: str | bytes, vtype: int, payload: bytes) -> bytes:
    return s(key) + struct.pack("<I", vtype) + payload


def tensor_info(name: str | bytes, shape: list[int], ttype: int, offset: int) -> bytes:
    out = s(name) + struct.pack("<I", len(shape))
    for d in shape:
        out += struct.pack("<Q", d)
    return out + struct.pack("<IQ", ttype, offset)


def build(kvs: list[bytes], infos: list[bytes], data: bytes, *, version: int = 3, n_tensors: int | None = None,
          n_kv: int | None = None, alignment: int = 32) -> bytes:
    head = b"GGUF" + struct.pack("<IQQ", version, len(infos) if n_tensors is None else n_tensors,
                                 len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(infos)
    pad = (-len(body)) % alignment
    return body + b"\0" * pad + data


def good_parts() -> tuple[list[bytes], list[bytes], bytes]:
    kvs = [kv("general.architecture", 8, s("llama")), kv("test.u32", 4, struct.pack("<I", 7))]
    infos = [tensor_info("w", [32, 2], 0, 0)]
    data = np.arange(64, dtype=np.float32).tobytes()
    return kvs, infos, data


def _one_tensor(shape: list[int], ttype: int = 0, offset: int = 0, name: str | bytes = "w",
                data: bytes = b"\0" * 128) -> bytes:
    return build([], [tensor_info(name, shape, ttype, offset)], data)


F32, Q4_0, STRING, ARRAY, U32 = 0, 2, 8, 9, 4

# name -> (file bytes, error class, regex its message must contain). Each message must also name the
# file; the regex names the field or the rule broken.
GGUF_CASES: dict[str, tuple[Callable[[], bytes], str, str]] = {
    # header
    "empty file": (lambda: b"", "FormatError", "not a GGUF file"),
    "bad magic": (lambda: b"GGML" + build(*good_parts())[4:], "FormatError", "magic"),
    "version 1": (lambda: build(*good_parts(), version=1), "FormatError", "v1 is obsolete"),
    "version 99": (lambda: build(*good_parts(), version=99), "FormatError", "version: expected 2 or 3"),
    "truncated header": (lambda: build(*good_parts())[:20], "FormatError", "truncated"),
    # counts
    "huge kv count": (lambda: build(*good_parts(), n_kv=2**62), "FormatError", "metadata_kv_count"),
    "kv count one too many": (lambda: build(*good_parts(), n_kv=3), "FormatError", "truncated|value type"),
    "huge tensor count": (lambda: build(*good_parts(), n_tensors=2**60), "FormatError", "tensor_count"),
    "tensor count wraps": (lambda: build(*good_parts(), n_tensors=2**64 - 1), "FormatError", "tensor_count"),
    # string lengths
    "truncated in metadata": (lambda: build(*good_parts())[:40], "FormatError", "truncated"),
    "key length past the end": (lambda: build([struct.pack("<Q", 2**40) + b"abc"], [], b"", n_kv=1),
                                "FormatError", "string of 1099511627776 bytes"),
    "key length wraps": (lambda: build([struct.pack("<Q", 2**64 - 1) + b"abc"], [], b"", n_kv=1),
                         "FormatError", "string of 18446744073709551615 bytes"),
    "value length past the end": (lambda: build([kv("k", STRING, struct.pack("<Q", 2**40) + b"x")], [], b""),
                                  "FormatError", "k .*string of"),
    "key not UTF-8": (lambda: build([kv(b"k\xff", U32, b"\1\0\0\0")], [], b""), "FormatError", "UTF-8"),
    "value not UTF-8": (lambda: build([kv("k", STRING, s(b"\xc3\x28"))], [], b""), "FormatError", "k: .*UTF-8"),
    "tensor name not UTF-8": (lambda: _one_tensor([8], name=b"w\xfe"), "FormatError", "UTF-8"),
    "tensor name past the end": (lambda: build([], [struct.pack("<Q", 2**50) + b"\0" * 40], b"", n_tensors=1),
                                 "FormatError", "tensor 0 name"),
    # value and array element types
    "bad value type": (lambda: build([kv("k", 13, b"\0" * 8)], [], b""), "FormatError", "value type 13"),
    "value type wraps": (lambda: build([kv("k", 2**32 - 1, b"\0" * 8)], [], b""), "FormatError", "value type"),
    "bad array element type": (lambda: build([kv("k", ARRAY, struct.pack("<IQ", 77, 1))], [], b""),
                               "FormatError", "array element type 77"),
    "bool not 0/1": (lambda: build([kv("k", 7, b"\x05")], [], b""), "FormatError", "bool must be 0 or 1"),
    "bool array not 0/1": (lambda: build([kv("k", ARRAY, struct.pack("<IQ", 7, 3) + b"\1\0\2")], [], b""),
                           "FormatError", "bool must be 0 or 1"),
    # array counts (an array may not promise more elements than the bytes left can hold)
    "huge array count": (lambda: build([kv("k", ARRAY, struct.pack("<IQ", U32, 2**61))], [], b""),
                         "FormatError", "cannot fit"),
    "array count overflows its byte size": (lambda: build([kv("k", ARRAY, struct.pack("<IQ", 11, 2**61 + 1))],
                                                          [], b""), "FormatError", "cannot fit"),
    "string array count past the end": (lambda: build([kv("k", ARRAY, struct.pack("<IQ", STRING, 2**40))], [], b""),
                                        "FormatError", "cannot fit"),
    "string array element past the end": (lambda: build([kv("k", ARRAY, struct.pack("<IQ", STRING, 2) + s("a")
                                                           + struct.pack("<Q", 2**40))], [], b""),
                                          "FormatError", "string of"),
    "nested array count past the end": (lambda: build([kv("k", ARRAY, struct.pack("<IQ", ARRAY, 1)
                                                         + struct.pack("<IQ", U32, 2**50))], [], b""),
                                        "FormatError", "cannot fit"),
    "deeply nested arrays": (lambda: build([kv("k", ARRAY, struct.pack("<IQ", ARRAY, 1) * 40)], [], b""),
                             "FormatError", "nested deeper"),
    # duplicates
    "duplicate key": (lambda: build([kv("k", U32, b"\1\0\0\0"), kv("k", U32, b"\2\0\0\0")], [], b""),
                      "FormatError", "k: duplicate metadata key"),
    "duplicate tensor": (lambda: build([], [tensor_info("w", [8], 0, 0), tensor_info("w", [8], 0, 32)], b"\0" * 128),
                         "FormatError", "duplicate tensor name"),
    # dimensions
    "zero dimension": (lambda: _one_tensor([32, 0]), "FormatError", "dimension 1 is 0"),
    "no dimensions": (lambda: _one_tensor([]), "FormatError", "n_dims must be 1..4"),
    "too many dims": (lambda: _one_tensor([1] * 9), "FormatError", "n_dims must be 1..4"),
    "n_dims wraps": (lambda: build([], [s("w") + struct.pack("<I", 2**32 - 1) + struct.pack("<Q", 8) * 4],
                                   b"\0" * 128), "FormatError", "n_dims must be 1..4"),
    "dimension 2^63": (lambda: _one_tensor([2**63]), "FormatError", "dimension 0 is 9223372036854775808"),
    # element-count and byte-size overflow
    "element count overflow": (lambda: _one_tensor([2**40, 2**40, 2**40]), "FormatError", "element count overflows"),
    "byte size overflow": (lambda: _one_tensor([2**40, 2**22]), "FormatError", "byte size overflows"),
    "row not multiple of block": (lambda: _one_tensor([33], ttype=8), "FormatError", "block size"),
    # offsets and alignment
    "truncated in tensor data": (lambda: build(*good_parts())[:-10], "FormatError", "runs past the end"),
    "tensor offset past end": (lambda: _one_tensor([32], offset=2**40), "FormatError", "runs past the end"),
    "tensor offset wraps": (lambda: _one_tensor([32], offset=2**64 - 32), "FormatError", "runs past the end"),
    "tensor size past end": (lambda: _one_tensor([32, 8]), "FormatError", "runs past the end"),
    "data section past end": (lambda: (b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + tensor_info("w", [8], 0, 0))[:-1]
                              + b"\0", "FormatError", "truncated|data section"),
    "unaligned tensor offset": (lambda: _one_tensor([8], offset=4), "FormatError", "alignment"),
    "alignment not power of two": (lambda: build([kv("general.alignment", U32, struct.pack("<I", 24))],
                                                 [tensor_info("w", [8], 0, 0)], b"\0" * 128, alignment=24),
                                   "FormatError", "general.alignment: expected a power of two"),
    "alignment zero": (lambda: build([kv("general.alignment", U32, struct.pack("<I", 0))], [], b""),
                       "FormatError", "general.alignment: expected a power of two"),
    "alignment huge": (lambda: build([kv("general.alignment", 10, struct.pack("<Q", 2**62))], [], b""),
                       "FormatError", "general.alignment: expected a power of two"),
    "alignment wrong type": (lambda: build([kv("general.alignment", STRING, s("32"))], [], b""),
                             "FormatError", "general.alignment: expected an unsigned integer"),
    "overlapping tensors": (lambda: build([], [tensor_info("a", [32], F32, 0), tensor_info("b", [32], F32, 64)],
                                          b"\0" * 256), "FormatError", "overlaps tensor 'a'"),
    "same offset twice": (lambda: build([], [tensor_info("a", [32], F32, 0), tensor_info("b", [32], F32, 0)],
                                        b"\0" * 128), "FormatError", "overlaps"),
    "gap between tensors": (lambda: build([], [tensor_info("a", [32], Q4_0, 0), tensor_info("b", [32], F32, 128)],
                                          b"\0" * 256), "FormatError", "belong to no tensor"),
    # type ids
    "unknown tensor type 31": (lambda: _one_tensor([32], ttype=31), "UnsupportedError", "tensor 'w'.*type id 31"),
    "removed tensor type 4": (lambda: _one_tensor([32], ttype=4), "UnsupportedError", "type id 4"),
    "tensor type wraps": (lambda: _one_tensor([32], ttype=2**32 - 1), "UnsupportedError", "type id 4294967295"),
    # a sound container that is not a model
    "no architecture": (lambda: build([kv("test.u32", U32, b"\7\0\0\0")], [], b""),
                        "FormatError", "general.architecture: required key is missing"),
    "architecture not a string": (lambda: build([kv("general.architecture", U32, b"\7\0\0\0")], [], b""),
                                  "FormatError", "general.architecture: expected a string"),
}


# ---- safetensors ---------------------------------------------------------------------------------
def blob(header: dict | bytes, data: bytes, *, header_len: int | None = None) -> bytes:
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(h) if header_len is None else header_len) + h + data


def good() -> tuple[dict, bytes]:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.arange(4, dtype=np.float16)
    header = {"__metadata__": {"format": "pt"},
              "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
              "b": {"dtype": "F16", "shape": [4], "data_offsets": [24, 32]}}
    return header, a.tobytes() + b.tobytes()


def safetensors_cases() -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, regex the FormatError's message must contain)."""
    h, d = good()

    def a(**fields) -> bytes:
        """The good file with tensor "a"'s entry changed (a field set to None is removed)."""
        entry = dict(h["a"], **fields)
        return blob(dict(h, a={k: v for k, v in entry.items() if v is not None}), d)

    def b_at(offsets) -> bytes:
        return blob(dict(h, b=dict(h["b"], data_offsets=offsets)), d)

    return {
        "empty file": (b"", "header length"),
        "short length": (b"\x05\x00\x00", "header length"),
        "length past end": (blob(h, d, header_len=10_000), "header length"),
        "huge length": (blob(h, d, header_len=2**63), "header length"),
        "not json": (blob(b"{not json}", d), "invalid JSON at byte 1"),
        "json array": (blob(b"[1, 2]    ", d), "expected a JSON object"),
        "trailing garbage": (blob(json.dumps(h).encode() + b"x", d), "end of the document"),
        "truncated json": (blob(json.dumps(h).encode()[:-5], d), "invalid JSON"),
        "bad utf8": (blob(b'{"a\xff": 1}', d), "UTF-8"),
        "lone surrogate": (blob(b'{"\\ud800": 1}', d), "surrogate"),
        "deep nesting": (blob(b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}", d), "nesting"),
        "duplicate key": (blob(b'{"a": 1, "a": 2}', d), "duplicate key"),
        "unknown dtype": (a(dtype="F31"), "unknown dtype"),
        "dtype not string": (a(dtype=7), r"\$\.a\.dtype: expected a string, found integer"),
        "missing shape": (a(shape=None), "shape"),
        "negative dim": (a(shape=[-2, 3]), "dimension"),
        "rank 5": (a(shape=[1, 1, 2, 3, 1]), "rank"),
        "overflowing shape": (a(shape=[2**40, 2**40, 2**40]), "overflows"),
        "huge integer dim": (a(shape=[10**30, 3]), "dimension|integer|range"),
        "float dim": (a(shape=[2.5, 3]), "integer"),
        "wrong size": (a(shape=[2, 4]), "needs 32"),
        "reversed offsets": (a(data_offsets=[24, 0]), "begin"),
        "offsets past end": (b_at([32, 40]), "past the end"),
        "offsets beyond 2^64": (b_at([24, 2**64 - 1]), r"data_offsets\[1\]: expected an integer"),
        "offsets near 2^53": (b_at([24, 2**53]), "past the end"),
        "overlap": (b_at([16, 24]), "overlap"),
        "three offsets": (a(data_offsets=[0, 24, 48]), "begin, end"),
        "extra key": (a(x=1), "unexpected key"),
        "entry not object": (blob(dict(h, a=[1, 2]), d), "expected an object"),
        "truncated data": (blob(h, d[:-3]), "past the end"),
    }


# ---- the committed corpus ----------------------------------------------------------------------------
def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def corpus_files() -> dict[str, tuple[bytes, str, str]]:
    """Relative path in the corpus -> (bytes, error class, message regex)."""
    out = {f"gguf/{slug(n)}.gguf": (make(), err, rx) for n, (make, err, rx) in GGUF_CASES.items()}
    out.update({f"safetensors/{slug(n)}.safetensors": (data, "FormatError", rx)
                for n, (data, rx) in safetensors_cases().items()})
    return out


def manifest() -> dict[str, dict[str, str]]:
    return {path: {"error": err, "match": rx} for path, (_, err, rx) in sorted(corpus_files().items())}


def write_corpus(root: Path) -> None:
    for rel, (data, _, _) in corpus_files().items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "manifest.json").write_text(json.dumps(manifest(), indent=1) + "\n")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS_DIR
    write_corpus(target)
    print(f"wrote {len(corpus_files())} files and manifest.json under {target}")
