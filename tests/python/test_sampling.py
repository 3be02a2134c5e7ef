"""Each sampler stage on four-entry distributions, against numpy written from the definitions.
Exact set equality for the filters; float tolerance 1e-6 for rescaled logits."""

from __future__ import annotations

import numpy as np
import pytest

LOGITS = [1.0, 3.0, 2.0, 0.5]  # probabilities ~ [0.086, 0.636, 0.234, 0.052] (id 1 > 2 > 0 > 3)


def probs(x):
    e = np.exp(np.asarray(x, np.float64) - max(x))
    return e / e.sum()


def apply(stage, param, logits=LOGITS, history=()):
    from wrenlm import _core

    return _core.sampling.apply(stage, param, list(logits), list(history))


@pytest.mark.parametrize("k, expected", [(1, {1}), (2, {1, 2}), (3, {0, 1, 2}), (0, {0, 1, 2, 3}), (9, {0, 1, 2, 3})])
def test_top_k(k, expected):
    ids, _, _ = apply("top_k", k)
    assert set(ids) == expected


@pytest.mark.parametrize("p", [0.5, 0.7, 0.87, 0.95, 1.0])
def test_top_p_smallest_set_reaching_p(p):
    order = np.argsort(-np.asarray(LOGITS))
    cum = np.cumsum(probs(LOGITS)[order])
    n = int(np.searchsorted(cum, p) + 1) if p < 1 else 4
    ids, _, _ = apply("top_p", p)
    assert set(ids) == set(order[:n].tolist())


@pytest.mark.parametrize("p", [0.05, 0.1, 0.3, 0.5])
def test_min_p_relative_to_top(p):
    pr = probs(LOGITS)
    expected = {i for i in range(4) if pr[i] >= p * pr.max()}
    ids, _, _ = apply("min_p", p)
    assert set(ids) == expected


def test_temperature_scales_logits():
    # Logits are scaled relative to the largest (the distribution is unchanged by the shift, and
    # nothing overflows for a tiny temperature): compare distances from the maximum.
    ids, out, _ = apply("temperature", 0.5)
    got = np.asarray([out[ids.index(i)] for i in range(4)])
    ref = np.asarray(LOGITS)
    np.testing.assert_allclose(got - got.max(), (ref - ref.max()) / 0.5, rtol=1e-6)


def test_repetition_penalty_divides_positive_multiplies_negative():
    logits = [2.0, -1.0, 0.5, 1.5]
    ids, out, _ = apply("repetition_penalty", 2.0, logits, history=[0, 1, 1])
    got = {i: out[ids.index(i)] for i in range(4)}
    assert got == pytest.approx({0: 1.0, 1: -2.0, 2: 0.5, 3: 1.5})


def test_greedy_picks_argmax():
    assert apply("greedy", 0)[2] == 1


def test_dist_frequencies_follow_probabilities():
    counts = np.zeros(4)
    for seed in range(4000):
        counts[apply("dist", seed)[2]] += 1
    # 4000 draws: the standard error of each frequency is < 0.008; allow 4 sigma.
    np.testing.assert_allclose(counts / counts.sum(), probs(LOGITS), atol=0.032)
