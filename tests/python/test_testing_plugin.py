"""wrenlm.testing and the pytest plugin: the tiny random Llama, the reproducibility helper, and the
fixtures as a user sees them, from fresh test files run by pytest's own ``pytester``.

References: the tiny model's folder is read by transformers (``LlamaForCausalLM``: logits within
1e-4 x max|logit| of wrenlm's in float32 with a float32 KV cache, the bar every F32 architecture test
uses; only summation order differs) and its tokenizer by Hugging Face ``tokenizers`` (identical ids
and text) and transformers' chat templating (identical prompt text). The fixtures run in a child
pytest process (``runpytest_subprocess``), so they come from the installed ``pytest11`` entry point,
not from this suite's conftest."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest
import wrenlm
from conftest import require_module
from wrenlm.testing import assert_reproducible, tiny_tokenizer_json, write_tiny_llama

pytest_plugins = ["pytester"]

TEXTS = ["Hello, world! The capital of France is", "Once upon a time", "안녕하세요, 반갑습니다 😀",
         "tabs\tand  double  spaces\n\n\nnew lines", "<|im_start|>user\nhi<|im_end|>\n", "x'll 1234567 don't",
         "   leading spaces", "", "ünïcödé çàfé — “quotes” …", "def f(x):\n    return x ** 2  # comment"]


def digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


# -- the tiny model --------------------------------------------------------------------------------

def test_tiny_llama_is_fast_and_deterministic(tmp_path):
    t0 = time.perf_counter()
    a = write_tiny_llama(tmp_path / "a", seed=5)
    with wrenlm.Model(a, n_threads=1) as m:
        m.generate("Hi", max_tokens=4)
    elapsed = time.perf_counter() - t0
    # Measured 0.05 s for the first model of a process (learning the 253 merges included), 4 ms after;
    # loading 8 ms. One second leaves room for a loaded CI machine.
    assert elapsed < 1.0, f"{elapsed:.2f} s to write, load and run the tiny model"
    assert digest(write_tiny_llama(tmp_path / "b", seed=5)) == digest(a)
    c = digest(write_tiny_llama(tmp_path / "c", seed=6))
    assert c["model.safetensors"] != digest(a)["model.safetensors"]
    assert c["tokenizer.json"] == digest(a)["tokenizer.json"]  # the tokenizer does not depend on the seed
    with wrenlm.Model(a, n_threads=1) as m:
        assert m.info["architecture"] == "llama" and m.n_vocab == 512
        assert sum(p.stat().st_size for p in a.iterdir()) < 1_000_000


def test_tiny_tokenizer_equals_hf_tokenizers(tmp_path):
    tokenizers = require_module("tokenizers")
    folder = write_tiny_llama(tmp_path, seed=0)
    hf = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert hf.get_vocab_size() == 512 == len(tiny_tokenizer_json()["model"]["vocab"])
    with wrenlm.Model(folder, n_threads=1) as m:
        for text in TEXTS:
            ids = m.tokenize(text)
            assert ids == hf.encode(text).ids, text
            assert m.detokenize(ids) == hf.decode(ids, skip_special_tokens=False) == text
        assert len(m.tokenize("The capital of France is")) < len("The capital of France is") / 2  # merges work
        assert m.tokenize("<|im_end|>") == [2] and m.is_eog(2)


def test_tiny_llama_logits_and_chat_template_equal_transformers(tmp_path):
    torch = require_module("torch")
    transformers = require_module("transformers")
    folder = write_tiny_llama(tmp_path, seed=3)
    ref_model = transformers.LlamaForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
    ref_tok = transformers.AutoTokenizer.from_pretrained(folder)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is RAG?"}]
    with wrenlm.Model(folder, n_threads=1, kv_cache="f32") as m:
        ids = m.tokenize("The quick brown fox jumps over the lazy dog. 안녕!")
        with torch.no_grad():
            ref = ref_model(torch.tensor([ids])).logits[0].numpy()
        ours = m.logits(ids)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4 * np.abs(ref).max())
        assert np.abs(ref).max() > 1.0  # logits far from flat: a wrong layer would show
        prompt = m.apply_chat_template(messages)
        assert prompt == ref_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert isinstance(m.chat(messages, max_tokens=4), str)


def test_tiny_llama_arguments(tmp_path):
    with pytest.raises(ValueError, match="n_heads"):
        write_tiny_llama(tmp_path, dim=30, n_heads=4)
    with pytest.raises(ValueError, match="seed"):
        write_tiny_llama(tmp_path, seed=-1)
    with pytest.raises(ValueError, match="init_std"):
        write_tiny_llama(tmp_path, init_std=0)
    bigger = write_tiny_llama(tmp_path / "big", n_layers=3, dim=96, n_heads=6, n_kv_heads=3, ffn_dim=64)
    with wrenlm.Model(bigger, n_threads=1) as m:
        assert m.info["n_layers"] == 3 and m.info["dim"] == 96


# -- assert_reproducible -------------------------------------------------------------------------------

class SeedIgnoringModel:
    """A model whose generation is not reproducible: it drops the seed it is given."""

    def __init__(self, model):
        self.model = model

    def stream(self, prompt, *, seed, **options):
        return self.model.stream(prompt, seed=None, **options)


def test_assert_reproducible(tmp_path):
    with wrenlm.Model(write_tiny_llama(tmp_path, seed=1), n_threads=1) as m:
        tokens = assert_reproducible(m, "Once upon a time", seed=11, max_tokens=24, temperature=1.0, reload=True)
        assert len(tokens) == 24
        assert tokens != assert_reproducible(m, "Once upon a time", seed=12, max_tokens=24, temperature=1.0)
        with pytest.raises(AssertionError, match="not reproducible with seed=11: run 2 differs from run 1"):
            assert_reproducible(SeedIgnoringModel(m), "Once upon a time", seed=11, max_tokens=32, temperature=1.0)
        with pytest.raises(ValueError, match="seed"):
            assert_reproducible(m, "Hi", seed=None)
        with pytest.raises(ValueError, match="runs"):
            assert_reproducible(m, "Hi", runs=1)


# -- the plugin, from fresh test files ------------------------------------------------------------------

USER_TESTS = """
import wrenlm
from wrenlm.testing import assert_reproducible

def test_tiny_model_generates(wrenlm_tiny_model):
    assert isinstance(wrenlm_tiny_model, wrenlm.Model)
    assert wrenlm_tiny_model.info["architecture"] == "llama"
    text = wrenlm_tiny_model.generate("Once upon a time", max_tokens=8, temperature=0.7, seed=1)
    assert isinstance(text, str)
    assert isinstance(wrenlm_tiny_model.chat([{"role": "user", "content": "hi"}], max_tokens=4), str)

def test_factory_seeds(wrenlm_tiny_model_factory, wrenlm_tiny_model):
    same = wrenlm_tiny_model_factory(seed=0)
    other = wrenlm_tiny_model_factory(seed=1, n_layers=1)
    ids = same.tokenize("hello there")
    assert (same.logits(ids) == wrenlm_tiny_model.logits(ids)).all()
    assert not (other.logits(ids) == same.logits(ids)).all()
    assert other.info["n_layers"] == 1 and same.path != wrenlm_tiny_model.path

def test_reproducible(wrenlm_tiny_model):
    assert_reproducible(wrenlm_tiny_model, "Once upon a time", seed=3, temperature=0.9, top_p=0.95)

class Flaky:
    def __init__(self, model):
        self.model = model
    def stream(self, prompt, *, seed, **options):
        return self.model.stream(prompt, seed=None, **options)

def test_not_reproducible(wrenlm_tiny_model):
    assert_reproducible(Flaky(wrenlm_tiny_model), "Once upon a time", seed=3, max_tokens=32, temperature=1.0)
"""


def test_plugin_fixtures_from_a_fresh_test_file(pytester):
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*test_not_reproducible*", "*AssertionError: generation is not reproducible*"])
    # Without the plugin (disabled by its entry-point name), the fixtures do not exist.
    result = pytester.runpytest_subprocess("-q", "-p", "no:wrenlm", "-p", "no:cacheprovider", "-k", "generates")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'wrenlm_tiny_model' not found*"])


def test_plugin_default_model_is_session_scoped(pytester, smollm2_path):
    pytester.makepyfile(test_default="""
        import wrenlm
        seen = []

        def test_first(wrenlm_model):
            seen.append(wrenlm_model)
            assert "Paris" in wrenlm_model.generate("The capital of France is", max_tokens=4)

        def test_second(wrenlm_model):
            assert seen and wrenlm_model is seen[0]  # loaded once for the session
    """)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", f"--wrenlm-model={smollm2_path}")
    result.assert_outcomes(passed=2)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "--wrenlm-model=/nonexistent/model.gguf")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*wrenlm_model: could not load /nonexistent/model.gguf*"])
