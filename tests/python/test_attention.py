"""Grouped-query attention over the KV cache (cpp/attention/) against a float64 numpy
reference, for both cache types and both paths: decode (< 16 query rows: per-row kernels, keys
split across tasks for long contexts) and prefill (>= 16 rows: tiled sgemm with an online softmax).

The reference reads the keys and values the cache holds (rounded to float16 for kv_cache="f16"),
so what is left is float32 arithmetic: summation order, exp, the online rescaling. Bound:
5e-6 * max|v| per element (measured up to 1.2e-6 * max|v|, over a few hundred keys); a masking
or head-mapping error shows up as O(max|v|).
"""

from __future__ import annotations

import numpy as np
import pytest


def reference(q, k, v, pos0, n_heads, n_kv_heads, causal=True, window=0, scale=0.0, softcap=0.0, alibi=None):
    n, q_dim = q.shape
    hd = q_dim // n_heads
    group = n_heads // n_kv_heads
    out = np.zeros((n, q_dim))
    for h in range(n_heads):
        g = h // group
        qh = q[:, h * hd:(h + 1) * hd].astype(np.float64)
        kh = k[:, g * hd:(g + 1) * hd].astype(np.float64)
        vh = v[:, g * hd:(g + 1) * hd].astype(np.float64)
        s = qh @ kh.T * (scale or 1 / np.sqrt(hd))
        if softcap:
            s = softcap * np.tanh(s / softcap)
        if alibi is not None:
            s = s + alibi[h] * np.arange(k.shape[0])[None, :]
        key, query = np.arange(k.shape[0])[None, :], (pos0 + np.arange(n))[:, None]
        visible = key <= query if causal else np.ones_like(key <= query)
        if window:
            visible = visible & (key > query - window)
        s = np.where(visible, s, -np.inf)
        p = np.exp(s - s.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        out[:, h * hd:(h + 1) * hd] = p @ vh
    return out


CASES = [  # (n, pos0, n_heads, n_kv_heads, head_dim)
    (1, 0, 9, 3, 64),     # first token
    (1, 37, 9, 3, 64),    # decode
    (1, 700, 9, 3, 64),   # decode, keys split across tasks
    (5, 300, 9, 3, 64),   # a few rows at once (speculative/short continuation), split
    (15, 0, 4, 4, 32),    # largest decode batch, multi-head (group 1)
    (16, 0, 8, 1, 16),    # smallest prefill, multi-query (group 8)
    (100, 0, 9, 3, 64),   # one query block, one key tile
    (200, 300, 9, 3, 64),  # several query blocks, rows not aligned to blocks
    (300, 600, 9, 3, 64),  # several key tiles per block (running softmax across tiles)
    (70, 500, 6, 2, 36),  # head size not a multiple of 8; the last rows reach a second key tile
]


@pytest.mark.parametrize("kv_cache", ["f16", "f32"])
@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("n,pos0,n_heads,n_kv_heads,head_dim", CASES)
def test_causal_attention_matches_numpy(kv_cache, n_threads, n, pos0, n_heads, n_kv_heads, head_dim):
    from wrenlm import _core

    rng = np.random.default_rng(n * 7919 + pos0)
    n_keys = pos0 + n
    q = (rng.standard_normal((n, n_heads * head_dim)) * 2).astype(np.float32)
    k = (rng.standard_normal((n_keys, n_kv_heads * head_dim)) * 2).astype(np.float32)
    v = rng.standard_normal((n_keys, n_kv_heads * head_dim)).astype(np.float32)
    got = _core.attention.attend(q, k, v, pos0=pos0, n_heads=n_heads, n_kv_heads=n_kv_heads, kv_cache=kv_cache,
                                 n_threads=n_threads)
    stored = (lambda a: a.astype(np.float16).astype(np.float32)) if kv_cache == "f16" else (lambda a: a)
    expected = reference(q, stored(k), stored(v), pos0, n_heads, n_kv_heads)
    err = np.abs(got - expected).max()
    print(f"max abs err {err:.2e} (max|v| {np.abs(v).max():.2f})")
    assert err <= 5e-6 * np.abs(v).max()


def test_unknown_cache_type_is_a_value_error():
    from wrenlm import _core

    z = np.zeros((1, 8), np.float32)
    with pytest.raises(ValueError, match="kv_cache"):
        _core.attention.attend(z, z, z, pos0=0, n_heads=1, n_kv_heads=1, kv_cache="bf16", n_threads=1)


MASKS = {  # name: keyword arguments of attend() and reference()
    "bidirectional": dict(causal=False),
    "window": dict(window=50),
    "window-1": dict(window=1),
    "scale+softcap": dict(scale=0.3, softcap=5.0),
    "alibi": dict(alibi="slopes"),
    "bidirectional-window": dict(causal=False, window=64),
}


@pytest.mark.parametrize("kv_cache", ["f16", "f32"])
@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("n,pos0,n_heads,n_kv_heads,head_dim",
                         [(1, 700, 8, 2, 32), (5, 300, 8, 2, 32), (200, 300, 8, 2, 32), (300, 600, 4, 4, 16)])
def test_attention_masks_match_numpy(kv_cache, mask, n, pos0, n_heads, n_kv_heads, head_dim):
    """Encoders (no causal mask), sliding windows (GPT-Neo, Gemma 2/3), score scaling and soft-capping
    (Gemma 2), ALiBi (BLOOM), on both paths; same float32-arithmetic bound as above."""
    from wrenlm import _core

    rng = np.random.default_rng(n * 31 + pos0)
    n_keys = pos0 + n
    q = (rng.standard_normal((n, n_heads * head_dim)) * 2).astype(np.float32)
    k = (rng.standard_normal((n_keys, n_kv_heads * head_dim)) * 2).astype(np.float32)
    v = rng.standard_normal((n_keys, n_kv_heads * head_dim)).astype(np.float32)
    opts = dict(MASKS[mask])
    if opts.get("alibi") == "slopes":  # BLOOM's geometric slopes, small enough to keep far keys visible
        opts["alibi"] = (2.0 ** (-8.0 * np.arange(1, n_heads + 1) / n_heads) * 0.05).astype(np.float32)
    got = _core.attention.attend(q, k, v, pos0=pos0, n_heads=n_heads, n_kv_heads=n_kv_heads, kv_cache=kv_cache,
                                 n_threads=3, **opts)
    stored = (lambda a: a.astype(np.float16).astype(np.float32)) if kv_cache == "f16" else (lambda a: a)
    expected = reference(q, stored(k), stored(v), pos0, n_heads, n_kv_heads, **opts)
    err = np.abs(got - expected).max()
    assert err <= 5e-6 * np.abs(v).max(), f"max abs err {err:.2e}"


@pytest.mark.parametrize("kv_cache", ["f16", "f32"])
@pytest.mark.parametrize("page_rows", [1, 7, 64, 4096])
@pytest.mark.parametrize("n,pos0,n_heads,n_kv_heads,head_dim,window",
                         [(1, 700, 9, 3, 64, 0), (5, 300, 8, 2, 32, 0), (200, 300, 8, 2, 32, 0),
                          (300, 600, 4, 4, 16, 0), (1, 700, 8, 2, 32, 50), (200, 300, 8, 2, 32, 64)])
def test_paged_cache_matches_numpy(kv_cache, page_rows, n, pos0, n_heads, n_kv_heads, head_dim, window):
    """The cache is paged: a head's keys are contiguous only within a page of page_rows positions,
    so both paths read runs and stitch them (decode: scores per run, values summed over runs;
    prefill: key tiles gathered run by run). Pages of 1 and 7 rows put a border inside every
    split and tile; 4096 holds everything in one. Same bound as above."""
    from wrenlm import _core

    rng = np.random.default_rng(n * 131 + pos0 + page_rows)
    n_keys = pos0 + n
    q = (rng.standard_normal((n, n_heads * head_dim)) * 2).astype(np.float32)
    k = (rng.standard_normal((n_keys, n_kv_heads * head_dim)) * 2).astype(np.float32)
    v = rng.standard_normal((n_keys, n_kv_heads * head_dim)).astype(np.float32)
    got = _core.attention.attend(q, k, v, pos0=pos0, n_heads=n_heads, n_kv_heads=n_kv_heads, kv_cache=kv_cache,
                                 n_threads=3, window=window, page_rows=page_rows)
    stored = (lambda a: a.astype(np.float16).astype(np.float32)) if kv_cache == "f16" else (lambda a: a)
    expected = reference(q, stored(k), stored(v), pos0, n_heads, n_kv_heads, window=window)
    err = np.abs(got - expected).max()
    assert err <= 5e-6 * np.abs(v).max(), f"max abs err {err:.2e}"
