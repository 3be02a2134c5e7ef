"""The GGUF reader vs gguf-py (its GGUFWriter writes, its GGUFReader is a second opinion), and
malformed files: every one must raise wrenlm.FormatError naming the file, never crash or hang."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from conftest import require_module


# ---- a minimal hand-written GGUF encoder, so tests can break any field on purpose ---------------
def s(text: str) -> bytes:
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key: str, vtype: int, payload: bytes) -> bytes:
    return s(key) + struct.pack("<I", vtype) + payload


def tensor_info(name: str, shape: list[int], ttype: int, offset: int) -> bytes:
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


def good_parts():
    kvs = [kv("general.architecture", 8, s("llama")), kv("test.u32", 4, struct.pack("<I", 7))]
    infos = [tensor_info("w", [32, 2], 0, 0)]
    data = np.arange(64, dtype=np.float32).tobytes()
    return kvs, infos, data


def write(tmp_path, blob: bytes, name="m.gguf") -> str:
    p = tmp_path / name
    p.write_bytes(blob)
    return str(p)


def test_handbuilt_file_reads(tmp_path):
    from wrenlm import _core

    f = _core.GgufFile(write(tmp_path, build(*good_parts())))
    assert f.metadata == {"general.architecture": "llama", "test.u32": 7}
    (name, ttype, shape, offset, nbytes), = f.tensors
    assert (name, ttype, shape, offset, nbytes) == ("w", "F32", [32, 2], 0, 256)
    assert np.frombuffer(f.tensor_bytes("w"), np.float32).tolist() == list(range(64))


def test_reader_agrees_with_gguf_py(tmp_path):
    gguf = require_module("gguf")
    from wrenlm import _core

    path = str(tmp_path / "w.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float32("t.f32", 1.5)
    w.add_float64("t.f64", 2.25)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "안녕하세요 ✓")
    w.add_array("t.arr", [1, 2, 3])
    w.add_array("t.strs", ["a", "bc", ""])
    w.add_array("t.nested", [[1, 2], [3], ["x", "y"]])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 64)).astype(np.float32)
    w.add_tensor("f32", x)
    w.add_tensor("f16", x.astype(np.float16))
    q = gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q4_1)
    w.add_tensor("q41", q, raw_dtype=gguf.GGMLQuantizationType.Q4_1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    ours = _core.GgufFile(path)
    ref = gguf.GGUFReader(path)
    md = ours.metadata
    for key, field in ref.fields.items():
        if key.startswith("GGUF.") or key == "t.nested":  # gguf-py's contents() flattens nesting
            continue
        expected = field.contents()
        got = md[key]
        if isinstance(expected, float):
            assert got == pytest.approx(expected, rel=1e-7), key
        else:
            assert got == expected, key
    assert md["t.nested"] == [[1, 2], [3], ["x", "y"]]
    assert len(ours.tensors) == len(ref.tensors)
    for (name, ttype, shape, _offset, nbytes), rt in zip(ours.tensors, ref.tensors):
        assert name == rt.name
        assert ttype == rt.tensor_type.name
        assert shape == [int(d) for d in rt.shape]
        assert nbytes == rt.n_bytes
        assert ours.tensor_bytes(name) == bytes(rt.data.reshape(-1).view(np.uint8))


MALFORMED = {
    "empty file": lambda: b"",
    "bad magic": lambda: b"GGML" + build(*good_parts())[4:],
    "version 1": lambda: build(*good_parts(), version=1),
    "version 99": lambda: build(*good_parts(), version=99),
    "truncated header": lambda: build(*good_parts())[:20],
    "truncated in metadata": lambda: build(*good_parts())[:40],
    "truncated in tensor data": lambda: build(*good_parts())[:-10],
    "huge kv count": lambda: build(*good_parts(), n_kv=2**62),
    "huge tensor count": lambda: build(*good_parts(), n_tensors=2**60),
    "string length past the end": lambda: build([struct.pack("<Q", 2**40) + b"abc"], [], b"", n_kv=1),
    "bad value type": lambda: build([kv("k", 13, b"\0" * 8)], [], b""),
    "bad array element type": lambda: build([kv("k", 9, struct.pack("<IQ", 77, 1))], [], b""),
    "huge array count": lambda: build([kv("k", 9, struct.pack("<IQ", 4, 2**61))], [], b""),
    "deeply nested arrays": lambda: build([kv("k", 9, struct.pack("<IQ", 9, 1) * 40)], [], b""),
    "bool not 0/1": lambda: build([kv("k", 7, b"\x05")], [], b""),
    "zero dimension": lambda: build([], [tensor_info("w", [32, 0], 0, 0)], b"\0" * 128),
    "too many dims": lambda: build([], [tensor_info("w", [1] * 9, 0, 0)], b"\0" * 128),
    "element count overflow": lambda: build([], [tensor_info("w", [2**40, 2**40, 2**40], 0, 0)], b"\0" * 128),
    "row not multiple of block": lambda: build([], [tensor_info("w", [33], 8, 0)], b"\0" * 128),
    "tensor offset past end": lambda: build([], [tensor_info("w", [32], 0, 2**40)], b"\0" * 128),
    "tensor size past end": lambda: build([], [tensor_info("w", [32, 8], 0, 0)], b"\0" * 128),
    "unaligned tensor offset": lambda: build([], [tensor_info("w", [8], 0, 4)], b"\0" * 128),
    "alignment not power of two": lambda: build([kv("general.alignment", 4, struct.pack("<I", 24))],
                                                 [tensor_info("w", [8], 0, 0)], b"\0" * 128, alignment=24),
    "alignment zero": lambda: build([kv("general.alignment", 4, struct.pack("<I", 0))], [], b""),
    "alignment wrong type": lambda: build([kv("general.alignment", 8, s("32"))], [], b""),
    "duplicate key": lambda: build([kv("k", 4, b"\1\0\0\0"), kv("k", 4, b"\2\0\0\0")], [], b""),
    "duplicate tensor": lambda: build([], [tensor_info("w", [8], 0, 0), tensor_info("w", [8], 0, 32)], b"\0" * 128),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_files_raise_format_error(tmp_path, case):
    import wrenlm
    from wrenlm import _core

    path = write(tmp_path, MALFORMED[case](), name="bad.gguf")
    with pytest.raises(wrenlm.FormatError) as e:
        _core.GgufFile(path)
    assert "bad.gguf" in str(e.value)


@pytest.mark.parametrize("type_id", [4, 31, 99, 2**31])  # 4: Q4_2, long removed; 31: never assigned
def test_unknown_tensor_type_is_unsupported(tmp_path, type_id):
    """A tensor type id we do not know is a well-formed file we cannot read: UnsupportedError naming the
    file, the tensor and the id (not FormatError)."""
    import wrenlm
    from wrenlm import _core

    path = write(tmp_path, build([], [tensor_info("w", [32], type_id, 0)], b"\0" * 128), name="new.gguf")
    with pytest.raises(wrenlm.UnsupportedError, match=rf"new\.gguf: tensor 'w'.*type id {type_id}\b"):
        _core.GgufFile(path)
    with pytest.raises(wrenlm.UnsupportedError, match=rf"type id {type_id}\b"):
        wrenlm.Model(path, n_threads=1)


def test_every_truncation_of_a_valid_file_is_rejected(tmp_path):
    """Cut a valid file at every byte of its header and some data points: always FormatError."""
    import wrenlm
    from wrenlm import _core

    blob = build(*good_parts())
    header_end = len(blob) - 256
    for cut in list(range(0, header_end)) + [header_end + 1, len(blob) - 1]:
        path = write(tmp_path, blob[:cut], name="cut.gguf")
        with pytest.raises(wrenlm.FormatError):
            _core.GgufFile(path)


def test_random_bit_flips_never_crash(tmp_path):
    """Fuzz lightly: flipped bytes either load or raise FormatError (UnsupportedError where a flip made
    the tensor type id one we do not know); nothing else."""
    import wrenlm
    from wrenlm import _core

    blob = bytearray(build(*good_parts()))
    rng = np.random.default_rng(7)
    for _ in range(300):
        b = bytearray(blob)
        for pos in rng.integers(0, len(b) - 256, size=3):
            b[pos] = int(rng.integers(0, 256))
        path = write(tmp_path, bytes(b), name="fuzz.gguf")
        try:
            _core.GgufFile(path)
        except (wrenlm.FormatError, wrenlm.UnsupportedError):
            pass


def test_missing_file_is_a_clear_error(tmp_path):
    import wrenlm
    from wrenlm import _core

    with pytest.raises(wrenlm.FormatError, match="nope.gguf"):
        _core.GgufFile(str(tmp_path / "nope.gguf"))
