"""The safetensors reader (and the JSON parser under it) vs the `safetensors` package, and malformed
files: every one must raise wrenlm.FormatError naming the file and the field, never crash or hang (one
file per class of damage is in the committed corpus, test_malformed_corpus.py)."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest
import wrenlm
from conftest import require_module
from malformed_files import blob, good
from wrenlm import _core


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
