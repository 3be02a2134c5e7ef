"""A Model pickles as its constructor call (path + options), so worker processes (multiprocessing,
Ray, Dask) can receive one. Oracle: a Model built directly from the same path and options."""

from __future__ import annotations

import multiprocessing
import pickle

import wrenlm

PROMPT = "The capital of France is"


def greedy(model: wrenlm.Model) -> list[int]:
    return model.generate_ids(model.tokenize(PROMPT), max_tokens=8, ignore_eos=True)


def _worker_generate(model: wrenlm.Model) -> tuple[list[int], dict]:
    return greedy(model), {"n_ctx": model.n_ctx, "kv_cache": model.kv_cache, "path": model.path}


def test_pickle_round_trip_keeps_options_not_weights(smollm2_path):
    m = wrenlm.Model(smollm2_path, n_ctx=192, n_threads=1, kv_cache="f32")
    blob = pickle.dumps(m)
    assert len(blob) < 1024  # the path and options, not 100 MB of weights
    m2 = pickle.loads(blob)
    direct = wrenlm.Model(smollm2_path, n_ctx=192, n_threads=1, kv_cache="f32")
    assert (m2.path, m2.n_ctx, m2.kv_cache, m2._e.n_threads) == (direct.path, 192, "f32", 1)
    assert greedy(m2) == greedy(direct)
    m.close()
    assert greedy(pickle.loads(pickle.dumps(m))) == greedy(direct)  # a closed Model unpickles open


def test_model_reaches_a_spawned_worker(smollm2_path):
    m = wrenlm.Model(smollm2_path, n_ctx=128, n_threads=1)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        ids, facts = pool.apply(_worker_generate, (m,))
    assert facts == {"n_ctx": 128, "kv_cache": "f16", "path": m.path}
    assert ids == greedy(m)
