"""`wrenlm embed`, run as a subprocess (the real command line), against sentence-transformers.

The reference is ``SentenceTransformer(all-MiniLM-L6-v2).encode(texts)`` on the same texts (PyTorch,
float32), independent of wrenlm. Vectors must agree in direction within cosine >= 0.9999, the bound
the library's own MiniLM tests hold (tests/python/test_st_folder.py); unnormalized ones also in length
within 1e-3 relative (float32 sums over 384 dims and six layers in a different order stay far below that;
an error in the pooling or the Normalize step changes it by orders of magnitude more).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import require_module
from test_cli import assert_clean_error, wrenlm_cmd
from test_st_folder import st_modules, unit

MIN_COSINE = 0.9999
TEXTS = ["The cat sat on the mat.", "Embeddings map text to vectors.", "짧은 한국어 문장입니다.",
         "Ça coûte 3 € — déjà vu?", "A somewhat longer sentence about lighthouses, storms and the sea at night."]


@pytest.fixture(scope="module")
def reference(minilm_dir: Path) -> Any:
    """SentenceTransformer on the folder (its modules: Transformer, Pooling(mean), Normalize)."""
    st = require_module("sentence_transformers")
    require_module("torch").set_num_threads(1)
    return st.SentenceTransformer(str(minilm_dir), device="cpu")


def embed(minilm_dir: Path, *args: str, stdin: str | None = None) -> Any:
    return wrenlm_cmd("embed", "--model", str(minilm_dir), "--threads", "1", *args, stdin=stdin)


def parse_jsonl(out: str) -> np.ndarray:
    rows = [json.loads(line) for line in out.splitlines()]
    assert [set(r) for r in rows] == [{"index", "embedding"}] * len(rows)
    assert [r["index"] for r in rows] == list(range(len(rows)))  # input order, from 0
    return np.array([r["embedding"] for r in rows], dtype=np.float32)


def assert_matches(ours: np.ndarray, ref: np.ndarray, *, unit_length: bool = True) -> None:
    assert ours.shape == ref.shape
    cos = (unit(ours) * unit(ref.astype(np.float64))).sum(-1)
    assert cos.min() >= MIN_COSINE, cos
    norms = np.linalg.norm(ours, axis=1)
    np.testing.assert_allclose(norms, np.linalg.norm(ref, axis=1), rtol=1e-3)
    if unit_length:
        np.testing.assert_allclose(norms, 1.0, rtol=1e-5)


def test_texts_from_arguments_as_json_lines(minilm_dir: Path, reference: Any) -> None:
    r = embed(minilm_dir, *TEXTS)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # one batch: no progress display
    ours = parse_jsonl(r.stdout)
    assert ours.shape == (len(TEXTS), 384)
    assert_matches(ours, reference.encode(TEXTS, convert_to_numpy=True))


def test_file_to_npy_and_json_lines_agree(minilm_dir: Path, reference: Any, tmp_path: Path) -> None:
    path = tmp_path / "texts.txt"
    # Blank lines are skipped; a Windows line end is not part of the text.
    path.write_bytes(("\n".join(TEXTS[:2]) + "\n\n   \n" + TEXTS[2] + "\r\n" + "\n".join(TEXTS[3:]) + "\n").encode())
    out = tmp_path / "vecs.npy"
    r = embed(minilm_dir, "--file", str(path), "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    vecs = np.load(out)
    assert vecs.dtype == np.float32 and vecs.shape == (len(TEXTS), 384)
    assert_matches(vecs, reference.encode(TEXTS, convert_to_numpy=True))
    # The JSON lines hold the same float32 values exactly (shortest decimals that read back the same).
    r = embed(minilm_dir, "--file", str(path))
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(parse_jsonl(r.stdout), vecs)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_stdin_in_batches_with_progress(minilm_dir: Path, reference: Any) -> None:
    texts = [f"Sentence number {k} is about {topic}." for k, topic in
             enumerate(["rain", "bread", "chess", "rivers", "music", "glass", "salt", "engines"] * 5)]
    lines = "\n".join(texts) + "\n"
    r = embed(minilm_dir, "--batch-size", "8", stdin=lines)
    assert r.returncode == 0, r.stderr
    assert_matches(parse_jsonl(r.stdout), reference.encode(texts, convert_to_numpy=True))
    # Not a terminal: a plain line per tenth of the texts, then a summary.
    progress = r.stderr.splitlines()
    assert progress[-2].startswith("embed: 100% 40/40 texts") and len(progress) <= 11, r.stderr
    assert progress[-1].startswith("embedded 40 texts in ")
    quiet = embed(minilm_dir, "--batch-size", "8", "--quiet", "--file", "-", stdin=lines)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "" and quiet.stdout == r.stdout


def test_pooling_and_normalize_options(minilm_dir: Path, reference: Any) -> None:
    """--pooling cls --no-normalize against sentence-transformers built from the folder's Transformer
    module with a CLS Pooling module and no Normalize."""
    import sentence_transformers as st

    modules = st_modules()
    cls = st.SentenceTransformer(modules=[reference[0], modules.Pooling(384, pooling_mode="cls")], device="cpu")
    r = embed(minilm_dir, "--pooling", "cls", "--no-normalize", *TEXTS)
    assert r.returncode == 0, r.stderr
    ours = parse_jsonl(r.stdout)
    assert_matches(ours, cls.encode(TEXTS, convert_to_numpy=True), unit_length=False)
    assert np.abs(np.linalg.norm(ours, axis=1) - 1).max() > 0.1  # really not normalized


def test_bad_input_is_one_clean_line(minilm_dir: Path, tmp_path: Path) -> None:
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\n")
    cases = [
        (embed(minilm_dir, "--file", str(tmp_path / "missing.txt")), "no such file"),
        (embed(minilm_dir), "no texts to embed"),  # stdin is empty (not a terminal)
        (embed(minilm_dir, "--batch-size", "many", "a text"), "--batch-size"),  # argparse's own check
        # Past all-MiniLM-L6-v2's max_seq_length (256 tokens), with cutting refused: raised by the library.
        (embed(minilm_dir, "--no-truncate", "word " * 300), "max_seq_length=256"),
    ]
    for r, fragment in cases:
        assert_clean_error(r, fragment)
        assert r.stdout == ""
        assert len(r.stderr.strip().splitlines()) <= 6  # the error line (argparse adds its usage lines)


@pytest.mark.parametrize("args,fragment", [
    (["--file", "BLANK"], "no non-blank line"),
    (["--file", "BLANK", "a text"], "not both"),
    (["--pooling", "median", "a text"], "--pooling must be one of"),
    (["--batch-size", "0", "a text"], "--batch-size must be at least 1"),
    (["--output", "MISSING/x.npy", "a text"], "does not exist"),
    (["--output", "FOLDER", "a text"], "is a folder"),
])
def test_bad_options_fail_before_loading(args: list[str], fragment: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """In-process (the same main() as the subprocess runs): checked before any model is loaded."""
    from wrenlm import cli

    (tmp_path / "blank.txt").write_text("\n  \n\n")
    names = {"BLANK": str(tmp_path / "blank.txt"), "MISSING/x.npy": str(tmp_path / "missing" / "x.npy"),
             "FOLDER": str(tmp_path)}

    def no_load(args: Any) -> Any:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(cli, "_load", no_load)
    assert cli.main(["embed", *[names.get(a, a) for a in args]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wrenlm: error: ") and err.count("\n") == 1 and fragment in err, err


def test_no_texts_from_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing given and stdin a terminal: an error, not a wait for typed input."""
    import argparse
    import io

    from wrenlm import cli_embed

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    args = argparse.Namespace(texts=[], file=None)
    with pytest.raises(ValueError, match="no texts to embed: give them as arguments"):
        cli_embed.read_texts(args, lambda path: pytest.fail("stdin was read"), Terminal("typed"))
