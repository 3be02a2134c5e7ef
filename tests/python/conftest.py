"""Shared fixtures. Reference dependencies (gguf-py, tokenizers, transformers, llama-cpp-python, the
llama.cpp vocab vectors) are skipped when missing, except under WRENLM_REQUIRE_REFERENCE=1 (CI), where
a missing reference is a test failure."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

REQUIRE_REFERENCE = os.environ.get("WRENLM_REQUIRE_REFERENCE") == "1"


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


@pytest.fixture(scope="session")
def llama_vocab_dir() -> Path:
    """llama.cpp's models/ folder with ggml-vocab-*.gguf and .inp/.out vectors ($WRENLM_VOCAB_DIR)."""
    env = os.environ.get("WRENLM_VOCAB_DIR")
    if not env or not (Path(env) / "ggml-vocab-starcoder.gguf").is_file():
        need("llama.cpp vocab vectors", "set WRENLM_VOCAB_DIR to vendor/llama.cpp/models of the "
             "llama-cpp-python sdist (.ci/run does)")
    return Path(env)
