"""The safetensors reader (and the JSON parser under it) vs the `safetensors` package, and malformed
files: every one must raise wrenlm.FormatError naming the file and the field, never crash or hang."""

from __future__ import annotations

import json
import random
import struct

import numpy as np
import pytest
import wrenlm
from conftest import require_module
from wrenlm import _core


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


def write(tmp_path, data: bytes, name="m.safetensors") -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def test_handbuilt_file_reads(tmp_path):
    f = _core.SafetensorsFile(write(tmp_path, blob(*good())))
    assert f.tensors == [("a", "F32", [2, 3]), ("b", "F16", [4])]
    assert np.frombuffer(f.tensor_bytes("a"), np.float32).tolist() == list(range(6))
    assert np.frombuffer(f.tensor_bytes("b"), np.float16).tolist() == list(range(4))


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "int64", "uint8", "float64"])
def test_matches_safetensors_package(tmp_path, dtype):
    """Files written by the reference implementation read back with the same names, dtypes, shapes and
    bytes; only F32/F16/BF16 are weights (others: UnsupportedError naming the tensor and dtype)."""
    torch = require_module("torch")
    st = require_module("safetensors.torch")
    g = torch.Generator().manual_seed(0)
    tensors = {"w.weight": torch.randn(3, 5, 7, generator=g), "b": torch.randn(7, generator=g),
               "m.x.4d": torch.randn(2, 1, 3, 4, generator=g), "scalar": torch.randn((), generator=g)}
    tensors = {k: (v * 10).to(getattr(torch, dtype)) for k, v in tensors.items()}
    path = str(tmp_path / "ref.safetensors")
    st.save_file(tensors, path, metadata={"format": "pt"})
    f = _core.SafetensorsFile(path)
    names = {}
    for name, dt, shape in f.tensors:
        names[name] = (dt, shape)
    ref_dt = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64", "uint8": "U8",
              "float64": "F64"}[dtype]
    assert names == {k: (ref_dt, list(v.shape)) for k, v in tensors.items()}
    for k, v in tensors.items():
        if ref_dt in ("F32", "F16", "BF16"):
            assert f.tensor_bytes(k) == v.reshape(-1).view(torch.uint8).numpy().tobytes(), k
        else:
            with pytest.raises(wrenlm.UnsupportedError, match=f"{k}.*{ref_dt}"):
                f.tensor_bytes(k)


def malformed_cases():
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
        "float dim": (a(shape=[2.5, 3]), "integer"),
        "wrong size": (a(shape=[2, 4]), "needs 32"),
        "reversed offsets": (a(data_offsets=[24, 0]), "begin"),
        "offsets past end": (b_at([32, 40]), "past the end"),
        "overlap": (b_at([16, 24]), "overlap"),
        "three offsets": (a(data_offsets=[0, 24, 48]), "begin, end"),
        "extra key": (a(x=1), "unexpected key"),
        "entry not object": (blob(dict(h, a=[1, 2]), d), "expected an object"),
        "truncated data": (blob(h, d[:-3]), "past the end"),
    }


@pytest.mark.parametrize("case", sorted(malformed_cases()))
def test_malformed_file_raises_format_error(tmp_path, case):
    data, match = malformed_cases()[case]
    path = write(tmp_path, data)
    with pytest.raises(wrenlm.FormatError, match=match) as e:
        _core.SafetensorsFile(path)
    assert path in str(e.value)


def test_every_truncation_raises_format_error(tmp_path):
    full = blob(*good())
    for n in range(len(full)):
        path = write(tmp_path, full[:n], f"t{n}.safetensors")
        with pytest.raises(wrenlm.FormatError):
            _core.SafetensorsFile(path)


def test_random_byte_flips_never_crash(tmp_path):
    """300 corrupted headers: each either reads (a flip inside a value can stay valid) or raises
    FormatError / UnsupportedError; anything else (a crash, another exception) fails."""
    full = bytearray(blob(*good()))
    rng = random.Random(0)
    header_end = 8 + struct.unpack("<Q", full[:8])[0]
    for k in range(300):
        b = bytearray(full)
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(header_end)] = rng.randrange(256)
        path = write(tmp_path, bytes(b), f"f{k}.safetensors")
        try:
            f = _core.SafetensorsFile(path)
            for name, _, _ in f.tensors:
                try:
                    f.tensor_bytes(name)
                except wrenlm.UnsupportedError:
                    pass
        except wrenlm.FormatError:
            pass
