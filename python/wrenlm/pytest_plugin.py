"""wrenlm's pytest plugin (registered through the ``pytest11`` entry point: installing wrenlm enables it).

Fixtures:
    wrenlm_tiny_model: a tiny random Llama with a real byte-level BPE tokenizer and a chat template
        (:func:`wrenlm.testing.write_tiny_llama`, seed 0), written to a temporary folder and loaded;
        a fresh one per test, in milliseconds. Its replies are gibberish, but they are real generations.
    wrenlm_tiny_model_factory: ``make(seed=0, **model_options)`` -> a new tiny model; several per test,
        other seeds or sizes (``n_layers=``, ``dim=`` ... are passed to ``write_tiny_llama``).
    wrenlm_model: the default model (SmolLM2-135M-Instruct Q4_1, fetched once into the user cache),
        loaded once per test session. ``--wrenlm-model PATH`` (or ``$WRENLM_MODEL``) picks another file.

Helper: :func:`wrenlm.testing.assert_reproducible` (also importable from here).

Example:
    >>> def test_my_summarizer(wrenlm_tiny_model):
    ...     assert isinstance(summarize(wrenlm_tiny_model, "some text"), str)
    >>> def test_seeded(wrenlm_tiny_model):
    ...     assert_reproducible(wrenlm_tiny_model, "Once upon a time", seed=1)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest

from wrenlm.testing import assert_reproducible

__all__ = ["assert_reproducible"]

_TINY_SHAPE = ("n_layers", "dim", "n_heads", "n_kv_heads", "ffn_dim", "init_std")  # write_tiny_llama's


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wrenlm")
    group.addoption("--wrenlm-model", dest="wrenlm_model", default=None, metavar="PATH",
                    help="model for the wrenlm_model fixture (default: $WRENLM_MODEL, else SmolLM2-135M-Instruct "
                         "Q4_1 from the user cache, fetched once)")


@pytest.fixture
def wrenlm_tiny_model_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """``make(seed=0, *, n_layers=2, dim=64, ..., **model_options)``: writes a tiny random Llama to a new
    temporary folder and returns it loaded as a ``wrenlm.Model`` (``n_threads=1`` unless given); every
    model made is closed after the test."""
    import wrenlm
    from wrenlm.testing import write_tiny_llama

    made: list[Any] = []

    def make(seed: int = 0, **options: Any) -> Any:
        shape = {k: options.pop(k) for k in _TINY_SHAPE if k in options}
        if isinstance(options.get("n_ctx"), int):  # a position table that holds the context asked for
            shape["n_ctx"] = max(options["n_ctx"], 2048)
        options.setdefault("n_threads", 1)
        folder = write_tiny_llama(tmp_path_factory.mktemp("wrenlm-tiny"), seed=seed, **shape)
        model = wrenlm.Model(folder, **options)
        made.append(model)
        return model

    yield make
    for model in made:
        model.close()


@pytest.fixture
def wrenlm_tiny_model(wrenlm_tiny_model_factory: Callable[..., Any]) -> Any:
    """A tiny random Llama (seed 0), loaded: see :func:`wrenlm.testing.write_tiny_llama`."""
    return wrenlm_tiny_model_factory(seed=0)


@pytest.fixture(scope="session")
def wrenlm_model(pytestconfig: pytest.Config) -> Iterator[Any]:
    """The default model (or ``--wrenlm-model PATH``), loaded once for the whole session."""
    import wrenlm

    path = pytestconfig.getoption("wrenlm_model", default=None)
    try:
        model = wrenlm.Model(path)
    except Exception as e:  # no network for the first fetch, a bad path, ...
        pytest.fail(f"wrenlm_model: could not load {path or 'the default model'}: {type(e).__name__}: {e} "
                    f"(run `wrenlm fetch` once, or pass --wrenlm-model PATH / set WRENLM_MODEL)", pytrace=False)
    yield model
    model.close()
