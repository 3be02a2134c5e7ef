"""The GGUF reader vs gguf-py (its GGUFWriter writes, its GGUFReader is a second opinion), and
malformed files: every one must raise wrenlm.FormatError naming the file, never crash or hang (one file
per class of damage is in the committed corpus, test_malformed_corpus.py)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_module
from malformed_files import build, good_parts, tensor_info


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
