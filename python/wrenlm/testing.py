"""Helpers for testing applications built on wrenlm: tiny random models made on the spot, and a check
that seeded generation is reproducible. The pytest fixtures built on them live in
:mod:`wrenlm.pytest_plugin`.

Everything here needs only wrenlm and numpy: the tiny model is a Hugging Face folder (``config.json``,
``model.safetensors``, ``tokenizer.json``, ``tokenizer_config.json``) written directly, no torch,
transformers or tokenizers involved; transformers and Hugging Face ``tokenizers`` read it as well.

Example:
    >>> from wrenlm.testing import write_tiny_llama, assert_reproducible
    >>> folder = write_tiny_llama("/tmp/tiny", seed=3)
    >>> with wrenlm.Model(folder) as m:
    ...     assert_reproducible(m, "Hello", seed=7)
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import re
import struct
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from wrenlm._args import check_int as _check_int

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # ids 0, 1, 2
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# The text the tokenizer's merges are learned from (at first use, in a few milliseconds): common English
# words and punctuation, a little code and Korean, so that typical test prompts take few tokens.
_CORPUS = """\
Once upon a time there was a little robot who lived in a small house by the sea. Every morning the robot
walked to the beach, looked at the waves and said hello to the birds. The capital of France is Paris, and
the capital of Korea is Seoul. What is the answer to the question? The answer is forty-two, of course!
You are a helpful assistant. Please write a short story about a cat, a dog and a friendly dragon.
The quick brown fox jumps over the lazy dog. She sells sea shells on the sea shore; he reads the news.
def hello(name): return "Hello, " + name + "!"  # a small function
for i in range(10): print(i, i * i)
Testing, testing: one, two, three. This is a test of the tiny model, and it should be reproducible.
안녕하세요, 반갑습니다. 오늘 날씨가 좋네요. 감사합니다.
The user asks a question and the assistant gives an answer. Thank you very much for your help today.
"""
_PRETOKENIZE = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+""")
N_MERGES = 253  # 3 special tokens + 256 bytes + 253 merges = a 512-token vocabulary


@functools.lru_cache(maxsize=1)
def _byte_symbols() -> tuple[str, ...]:
    """GPT-2's byte-level alphabet: byte b -> a printable character (the table every byte-level BPE uses)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return tuple(table[b] for b in range(256))


def _merge(symbols: list[str], a: str, b: str) -> list[str]:
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


@functools.lru_cache(maxsize=1)
def _learned_merges() -> tuple[tuple[str, str], ...]:
    """Byte-pair merges learned from _CORPUS: most frequent pair first, ties broken by the pair's text
    (so the result never depends on dictionary order)."""
    alphabet = _byte_symbols()
    words = Counter("".join(alphabet[b] for b in w.encode("utf-8")) for w in _PRETOKENIZE.findall(_CORPUS))
    split = {w: list(w) for w in words}
    merges: list[tuple[str, str]] = []
    while len(merges) < N_MERGES:
        pairs: Counter[tuple[str, str]] = Counter()
        for w, n in words.items():
            s = split[w]
            for pair in zip(s, s[1:]):
                pairs[pair] += n
        if not pairs:
            break
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merges.append((a, b))
        for w in words:
            if a in split[w]:
                split[w] = _merge(split[w], a, b)
    return tuple(merges)


def tiny_tokenizer_json() -> dict[str, Any]:
    """A byte-level BPE ``tokenizer.json`` (as GPT-2, SmolLM2, Llama 3 use): 512 tokens — three special
    tokens (``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``), the 256 bytes and 253 merges. Any
    text encodes and decodes back exactly.

    Returns:
        The document, ready for ``json.dump``; Hugging Face ``tokenizers`` loads it too.
    """
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    for s in _byte_symbols():
        vocab[s] = len(vocab)
    merges = _learned_merges()
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for i, t in enumerate(SPECIAL_TOKENS)]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": byte_level, "post_processor": None, "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [[a, b] for a, b in merges]},
    }


def _write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """float32 tensors in the safetensors layout: an 8-byte header length, a JSON header, the data."""
    header: dict[str, Any] = {}
    offset = 0
    for name, t in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for t in tensors.values():
            f.write(np.ascontiguousarray(t, dtype="<f4").tobytes())


def write_tiny_llama(folder: str | os.PathLike[str], *, seed: int = 0, n_layers: int = 2, dim: int = 64,
                     n_heads: int = 4, n_kv_heads: int = 2, ffn_dim: int = 128, n_ctx: int = 2048,
                     init_std: float = 0.1) -> Path:
    """Writes a tiny random Llama as a Hugging Face folder: ``config.json``, ``model.safetensors``
    (float32), ``tokenizer.json`` (:func:`tiny_tokenizer_json`) and ``tokenizer_config.json`` (with a
    ChatML chat template, so ``Model.chat`` works). A few hundred kilobytes, written in milliseconds.

    The same seed and sizes give byte-identical files; the outputs mean nothing, but seeded generation
    from them is as reproducible as from any model.

    Args:
        folder: where to write (created if missing; existing files of these names are replaced).
        seed: seed of the weights (numpy's PCG64).
        n_layers, dim, n_heads, n_kv_heads, ffn_dim: the shape (dim divisible by n_heads, n_heads by
            n_kv_heads).
        n_ctx: the position limit the config declares (``max_position_embeddings``).
        init_std: standard deviation of the random matrices; norms are 1.

    Returns:
        The folder, as a Path: ``wrenlm.Model(folder)`` loads it.

    Raises:
        ValueError: a size is not a positive integer, or the head counts do not divide.

    Example:
        >>> m = wrenlm.Model(write_tiny_llama(tmp_path, seed=1), n_threads=1)
    """
    seed = _check_int("seed", seed, minimum=0)
    n_layers = _check_int("n_layers", n_layers, minimum=1, maximum=64)
    dim = _check_int("dim", dim, minimum=1, maximum=4096)
    n_heads = _check_int("n_heads", n_heads, minimum=1, maximum=256)
    n_kv_heads = _check_int("n_kv_heads", n_kv_heads, minimum=1, maximum=256)
    ffn_dim = _check_int("ffn_dim", ffn_dim, minimum=1, maximum=16384)
    n_ctx = _check_int("n_ctx", n_ctx, minimum=1, maximum=1 << 20)
    if dim % n_heads or (dim // n_heads) % 2 or n_heads % n_kv_heads:
        raise ValueError(f"dim ({dim}) must be a multiple of n_heads ({n_heads}) with an even head size, and "
                         f"n_heads a multiple of n_kv_heads ({n_kv_heads})")
    if not isinstance(init_std, (int, float)) or not 0 < init_std < 10:
        raise ValueError(f"init_std must be a number in (0, 10), got {init_std!r}")
    out = Path(os.fspath(folder))
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer_json()
    n_vocab = len(tokenizer["model"]["vocab"])
    head = dim // n_heads
    rng = np.random.default_rng(seed)

    def matrix(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * init_std).astype(np.float32)

    tensors = {"model.embed_tokens.weight": matrix(n_vocab, dim)}
    for i in range(n_layers):
        p = f"model.layers.{i}."
        tensors[p + "input_layernorm.weight"] = np.ones(dim, np.float32)
        tensors[p + "self_attn.q_proj.weight"] = matrix(n_heads * head, dim)
        tensors[p + "self_attn.k_proj.weight"] = matrix(n_kv_heads * head, dim)
        tensors[p + "self_attn.v_proj.weight"] = matrix(n_kv_heads * head, dim)
        tensors[p + "self_attn.o_proj.weight"] = matrix(dim, n_heads * head)
        tensors[p + "post_attention_layernorm.weight"] = np.ones(dim, np.float32)
        tensors[p + "mlp.gate_proj.weight"] = matrix(ffn_dim, dim)
        tensors[p + "mlp.up_proj.weight"] = matrix(ffn_dim, dim)
        tensors[p + "mlp.down_proj.weight"] = matrix(dim, ffn_dim)
    tensors["model.norm.weight"] = np.ones(dim, np.float32)
    tensors["lm_head.weight"] = matrix(n_vocab, dim)

    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": n_vocab,
              "hidden_size": dim, "intermediate_size": ffn_dim, "num_hidden_layers": n_layers,
              "num_attention_heads": n_heads, "num_key_value_heads": n_kv_heads, "head_dim": head,
              "max_position_embeddings": n_ctx, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
              "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False,
              "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}
    tokenizer_config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|im_start|>",
                        "eos_token": "<|im_end|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                        "add_bos_token": False, "add_eos_token": False, "model_max_length": n_ctx,
                        "chat_template": CHAT_TEMPLATE}
    (out / "config.json").write_text(json.dumps(config, indent=1))
    (out / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=1))
    _write_safetensors(out / "model.safetensors", tensors)
    return out


Prompt = Union[str, Sequence[int]]


def assert_reproducible(model: Any, prompt: Prompt, *, seed: int = 0, runs: int = 3, max_tokens: int = 16,
                        temperature: float = 0.8, reload: bool = False, **options: Any) -> list[int]:
    """Asserts that seeded generation gives the same tokens every time.

    Generates ``runs`` times from ``prompt`` with one seed (sampling, not greedy, unless
    ``temperature=0``) and compares the token ids with the first run's; with ``reload``, a fresh copy of
    the model (opened again from its file, as a worker process would) must give them too.

    Args:
        model: a :class:`wrenlm.Model` (or any object with the same ``stream()``).
        prompt: text or token ids.
        seed: the sampling seed (an integer: without one, generation is meant to vary).
        runs: generations to compare (at least 2).
        max_tokens, temperature: as for ``Model.stream``.
        reload: also compare a copy of the model reopened from its file (``pickle`` round trip).
        **options: any other ``Model.stream`` option (top_k, top_p, stop, logit_bias, ...).

    Returns:
        The generated token ids (the same in every run).

    Raises:
        AssertionError: two runs differ; the message shows the first differing position and both texts.
        ValueError: seed is missing or runs < 2.

    Example:
        >>> assert_reproducible(model, "Once upon a time", seed=42, top_p=0.9, max_tokens=32)
    """
    if seed is None:
        raise ValueError("seed must be an integer: generation without a seed is meant to differ between calls")
    seed = _check_int("seed", seed, minimum=0)
    runs = _check_int("runs", runs, minimum=2, maximum=1000)
    models = [model] * runs
    if reload:
        models.append(pickle.loads(pickle.dumps(model)))
    results: list[tuple[list[int], str]] = []
    try:
        for m in models:
            stream = m.stream(prompt, seed=seed, max_tokens=max_tokens, temperature=temperature, **options)
            text = "".join(stream)
            results.append((list(stream.tokens), text))
    finally:
        if reload:
            models[-1].close()
    first_tokens, first_text = results[0]
    for k, (tokens, text) in enumerate(results[1:], start=1):
        if tokens != first_tokens:
            at = next((i for i, (a, b) in enumerate(zip(first_tokens, tokens)) if a != b),
                      min(len(first_tokens), len(tokens)))
            which = "the reloaded model" if reload and k == len(results) - 1 else f"run {k + 1}"
            raise AssertionError(
                f"generation is not reproducible with seed={seed}: {which} differs from run 1 at token {at} "
                f"(of {len(first_tokens)} and {len(tokens)})\n  run 1: {first_text!r}\n  {which}: {text!r}")
    return first_tokens
