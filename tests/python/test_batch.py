"""Several sequences in one forward pass (Engine.eval_batch), on the paged KV cache.

The oracle is the same engine running each sequence alone (Model.logits and single-session eval),
which test_logits.py checks against transformers; what these tests add is that batching, paging
and page sharing change nothing a sequence computes.

Tolerances: those test_logits.py uses against transformers.
- exact path (float activations): 2e-3 * max|logit| and the same argmax wherever a flip is not
  within the measured difference (see check_close). A sequence's rows go
  through the same kernels in a batch as alone except the float GEMMs, whose blocking follows the
  batch's row count (summation order); float32 differences then flip a few float16 roundings of
  keys and values, which the layers amplify: measured up to ~1e-4 * max|logit|.
- generation path (8-bit activations): 9e-2 * max|logit| (test_logits.py's measured bound against
  transformers) and the same top-1 wherever the top-2 gap is >= 1 logit. Each row's activations
  are quantized on their own and each sequence takes the attention path its own row count picks,
  so what is left is the same float summation order, amplified by 8-bit rounding: measured values
  are printed.
"""

from __future__ import annotations

import numpy as np
import pytest
import wrenlm

# Mixed lengths: decode-sized (< 16 rows) and prefill-sized, across page (64) and pass (512) borders.
LENGTHS = [1, 5, 17, 40, 64, 65, 130, 300]


@pytest.fixture(scope="module")
def model(smollm2_path):
    m = wrenlm.Model(smollm2_path, n_ctx=1024, n_threads=2, cache_mb=0)  # KV bytes: sequences' pages only
    yield m
    m.close()


def prompts(model, lengths=LENGTHS, seed=0):
    rng = np.random.default_rng(seed)
    text = ("The quick brown fox jumps over the lazy dog while the committee debates the budget of the "
            "new library, which opens next spring with a reading room, a cafe and a garden. ") * 30
    ids = model.tokenize(text)
    out = []
    for n in lengths:
        start = int(rng.integers(0, len(ids) - n))
        out.append(ids[start:start + n])
    return out


EXACT, FAST = (True, 2e-3), (False, 9e-2)


def check_close(got, want, bound, exact=True):
    """max |got - want| <= bound * max|want|; top-1 equal wherever want's top-2 gap is over twice
    the measured max |diff| (exact path: with every logit within err, a flip needs a gap under 2 err;
    a row of this test's prompts once had a 3e-4 gap) or >= 1 logit (generation path). Returns the
    relative difference."""
    scale = np.abs(want).max()
    err = np.abs(got - want).max()
    assert err <= bound * scale, f"max |diff| {err:.3g} > {bound} * {scale:.3g}"
    g, w = got.reshape(-1, want.shape[-1]), want.reshape(-1, want.shape[-1])
    top2 = np.sort(w, axis=-1)[:, -2:]
    gap = top2[:, 1] - top2[:, 0]
    clear = gap > 2 * err if exact else gap >= 1.0
    assert (g.argmax(-1) == w.argmax(-1))[clear].all()
    return err / scale


@pytest.mark.parametrize("exact,bound", [EXACT, FAST])
def test_batch_of_mixed_prompts_equals_each_alone(model, exact, bound):
    engine = model._engine
    seqs = prompts(model)
    alone = [model.logits(ids, exact=exact) for ids in seqs]
    items = [(engine.session(), ids, True) for ids in seqs]
    together = engine.eval_batch(items, exact=exact)
    worst = max(check_close(g, w, bound, exact) for g, w in zip(together, alone))
    print(f"exact={exact}: worst max|diff| / max|logit| = {worst:.2e}")
    for (s, ids, _) in items:
        assert s.n_past == len(ids)


@pytest.mark.parametrize("exact,bound", [EXACT, FAST])
def test_batched_decode_equals_each_alone(model, exact, bound):
    """8 sequences of different lengths decode one token each in one pass; each equals a clone of
    it (sharing its pages, copied on write) decoding alone."""
    engine = model._engine
    seqs = prompts(model, seed=1)
    sessions = [engine.session() for _ in seqs]
    engine.eval_batch([(s, ids, False) for s, ids in zip(sessions, seqs)], exact=exact)
    clones = []
    for s in sessions:
        c = engine.session()
        s.share_prefix(c, s.n_past)
        clones.append(c)
    step = [[int(t)] for t in np.random.default_rng(2).integers(0, 49152, len(seqs))]
    batched = engine.eval_batch([(s, t, False) for s, t in zip(sessions, step)], exact=exact)
    worst = 0.0
    for c, t, got in zip(clones, step, batched):
        want = engine.eval_batch([(c, t, False)], exact=exact)[0]
        worst = max(worst, check_close(got, want, bound, exact))
    print(f"exact={exact}: worst max|diff| / max|logit| = {worst:.2e}")
    # The clones' decode wrote their own copies of the shared last pages: a second step on the
    # originals still sees their own first step.
    for s, c in zip(sessions, clones):
        assert s.n_past == c.n_past


def test_greedy_continuations_batched_equal_alone(model):
    """Greedy decoding of 8 prompts for 24 tokens, all in one batch per step, against each prompt
    decoded alone with Model.generate (temperature 0): identical tokens. A near-tie could part them
    (the logits agree to ~1e-3 relative); these prompts have none (margins printed)."""
    engine = model._engine
    seqs = prompts(model, lengths=[3, 9, 20, 33, 70, 100, 129, 200], seed=3)
    sessions = [engine.session() for _ in seqs]
    last = engine.eval_batch([(s, ids, False) for s, ids in zip(sessions, seqs)])
    out = [[] for _ in seqs]
    for _ in range(24):
        nxt = [int(np.argmax(lg)) for lg in last]
        for o, t in zip(out, nxt):
            o.append(t)
        last = engine.eval_batch([(s, [t], False) for s, t in zip(sessions, nxt)])
    for ids, got in zip(seqs, out):
        alone = model.generate_ids(ids, max_tokens=24, temperature=0.0, ignore_eos=True)
        assert got == alone


def test_prefix_shared_by_eight_sequences_is_stored_once(model):
    engine = model._engine
    prefix = prompts(model, lengths=[640], seed=4)[0]  # 10 pages of 64 positions
    base = engine.session()
    engine.eval_batch([(base, prefix, False)])
    one = engine.kv_bytes
    assert one == base.kv_bytes
    forks = []
    for _ in range(8):
        f = engine.session()
        base.share_prefix(f, len(prefix))
        forks.append(f)
    assert engine.kv_bytes == one  # nothing copied yet
    # Each fork adds a token: its first write goes past the shared pages (640 = 10 full pages), so
    # each takes one new page of its own.
    engine.eval_batch([(fork, [42 + i], False) for i, fork in enumerate(forks)])
    page = one // 10
    assert engine.kv_bytes == one + 8 * page
    del forks, f
    import gc

    gc.collect()
    assert engine.kv_bytes == one


def test_prefix_reuse_never_leaks_between_sequences(model):
    """Two forks of one prefix that differ only in their last token: each one's logits equal a
    cold computation of its own full prompt, so neither saw the other's token (the shared partial
    page is copied on the first write)."""
    engine = model._engine
    prefix = prompts(model, lengths=[100], seed=5)[0]  # ends inside a page: the page is shared
    base = engine.session()
    engine.eval_batch([(base, prefix, False)], exact=True)
    a, b = engine.session(), engine.session()
    base.share_prefix(a, len(prefix))
    base.share_prefix(b, len(prefix))
    got_a, got_b = engine.eval_batch([(a, [1000], False), (b, [2000], False)], exact=True)
    want_a = model.logits(prefix + [1000], exact=True)[-1]
    want_b = model.logits(prefix + [2000], exact=True)[-1]
    check_close(got_a, want_a, EXACT[1])
    check_close(got_b, want_b, EXACT[1])
    assert np.abs(got_a - got_b).max() > 1e-2 * np.abs(want_a).max()


def test_truncate_then_continue_equals_cold(model):
    engine = model._engine
    ids = prompts(model, lengths=[150], seed=6)[0]
    s = engine.session()
    engine.eval_batch([(s, ids, False)], exact=True)
    s.truncate(90)
    assert s.n_past == 90
    got = engine.eval_batch([(s, ids[90:120], True)], exact=True)[0]
    check_close(got, model.logits(ids[:120], exact=True)[90:], EXACT[1])


def test_bad_batches_are_value_errors(model):
    engine = model._engine
    s = engine.session()
    with pytest.raises(ValueError, match="twice"):
        engine.eval_batch([(s, [1], False), (s, [2], False)])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        engine.eval_batch([(engine.session(), [1], False), (s, [10**6], False)])
    assert s.n_past == 0  # nothing ran
    with pytest.raises(ValueError, match="no tokens"):
        engine.eval_batch([(s, [], False)])
    with pytest.raises(wrenlm.ContextOverflowError):
        engine.eval_batch([(s, [1] * 1025, False)])
    with pytest.raises(ValueError):
        s.truncate(5)  # past what it holds


def test_sliding_layers_keep_only_their_window(gemma3_path):
    """Gemma 3 270M: most layers attend through a 512-key window; their pages before the window are
    given back, so a long context costs full pages only on the global layers. Logits at the end of
    a 1,500-token context (decoded in two calls, so the second call reads through released pages'
    neighbours) equal one cold pass over the whole input (exact path bound)."""
    m = wrenlm.Model(gemma3_path, n_ctx=2048, n_threads=2)
    try:
        info = m._engine.info
        window, sliding = info["sliding_window"], info["n_sliding_layers"]
        n_layers, kv_dim = info["n_layers"], info["kv_dim"]
        assert window == 512 and 0 < sliding < n_layers
        rng = np.random.default_rng(7)
        ids = [int(t) for t in rng.integers(100, 20000, 1500)]
        s = m._engine.session()
        m._engine.eval_batch([(s, ids[:1400], False)], exact=True)
        got = m._engine.eval_batch([(s, ids[1400:], True)], exact=True)[0]
        page_layer = 64 * kv_dim * 2 * 2  # one layer's K and V for 64 positions, F16
        full_pages = -(-1500 // 64)
        # Positions 1500 - 512 + 1 = 989 on are still seen; pages wholly before 989 are gone.
        window_pages = full_pages - (1500 - window + 1) // 64
        want_bytes = (n_layers - sliding) * full_pages * page_layer + sliding * window_pages * page_layer
        flat = n_layers * 1500 * kv_dim * 2 * 2
        print(f"KV bytes {s.kv_bytes} (paged, windowed) vs {flat} for a flat cache of 1500 positions")
        assert s.kv_bytes == want_bytes
        want = m.logits(ids, exact=True)[1400:]
        check_close(got, want, EXACT[1])
    finally:
        m.close()
