"""wrenlm.integrations.ray on a local Ray cluster (``ray.init(num_cpus=2)``): two actors with one
model each, against independent references run in this process.

- Embeddings (all-MiniLM-L6-v2, 40 texts, batches of 4 spread over 2 actors) equal a single-process
  ``wrenlm.Model(...).embed(texts)`` bit for bit: the engine computes each text alone in a fixed order
  of operations whatever the batch and thread count (measured: identical for batch sizes 8 and 32 and
  1 or 2 threads), so any difference means a row got another row's vector or a wrong option. They
  also match sentence-transformers at cosine >= 0.9999, the bar test_embeddings.py sets for this model.
- The first 8 texts are long and the rest short, so the first batches finish last: without order
  preservation this run comes back as ids 8..19 before 0..7 (measured), so the order check can fail.
- Greedy generation (SmolLM2, temperature 0) equals ``Model.generate`` / ``Model.chat`` on each
  prompt alone in this process: same text. Ray batches decode several prompts together, which the
  engine keeps equal to single runs up to float rounding; these prompts have no near-tie (checked).
- A row that fails (a text past max_seq_length with truncate=False, a prompt past n_ctx) is named by
  its id: the job fails with that id and error (on_error="raise"), or the row alone carries the error
  while the others are still right (on_error="record").

With WRENLM_REQUIRE_REFERENCE=1 a missing ray[data] or sentence-transformers fails these tests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys

import numpy as np
import pytest
import wrenlm
from conftest import require_module

LONG = "The quick brown fox jumps over the lazy dog while the band plays on. "
TEXTS = [LONG * (8 + k) for k in range(8)] + [
    f"Sentence {k}: " + ("cats sleep most of the day" if k % 3 == 0 else
                         "Paris is the capital of France" if k % 3 == 1 else "rain is expected tomorrow")
    for k in range(8, 40)]
PROMPTS = ["The capital of France is", "Once upon a time", "def fibonacci(n):", "The three primary colors are",
           "Water boils at", "My favourite book is", "1, 2, 3, 4,", "In the year 2050,"]
MAX_TOKENS = 16


@pytest.fixture(scope="module")
def ray_mod():
    """A local two-CPU Ray cluster for this module (shut down after it), and wrenlm.integrations.ray."""
    ray = require_module("ray")
    require_module("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    from wrenlm.integrations import ray as wren_ray

    yield ray, wren_ray
    ray.shutdown()


@contextlib.contextmanager
def ray_data_log():
    """The messages Ray Data logs meanwhile (its progress, when stdout is not a terminal)."""
    messages: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("ray.data")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def dataset(ray, column, values):
    return ray.data.from_items([{"id": k, column: v} for k, v in enumerate(values)])


def test_workers_import_this_wrenlm(ray_mod):
    """Ray's worker processes run this interpreter and this wrenlm, not another installed copy."""
    ray, _ = ray_mod

    @ray.remote(num_cpus=1)
    def where():
        import wrenlm as w

        return sys.executable, w.__file__

    assert ray.get(where.remote()) == (sys.executable, wrenlm.__file__)


def test_embed_equals_single_process_and_sentence_transformers(ray_mod, minilm_dir):
    ray, wren_ray = ray_mod
    st = require_module("sentence_transformers")
    out = wren_ray.embed(dataset(ray, "text", TEXTS), str(minilm_dir), n_threads=1, batch_size=4, id_column="id")
    with ray_data_log() as log:
        rows = out.take_all()
    assert any("Total Progress" in m for m in log), "Ray Data's progress is on by default"
    assert [r["id"] for r in rows] == list(range(len(TEXTS))), "rows in input order"
    assert [r["text"] for r in rows] == TEXTS
    got = np.stack([r["embedding"] for r in rows])
    with wrenlm.Model(minilm_dir, n_threads=1) as m:
        expected = m.embed(TEXTS)
    assert got.dtype == np.float32 and got.shape == (40, 384)
    np.testing.assert_array_equal(got, expected)
    ref = st.SentenceTransformer(str(minilm_dir), device="cpu").encode(TEXTS, convert_to_numpy=True)
    cos = np.sum(got * ref, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    assert cos.min() >= 0.9999, cos.min()


def test_embed_failed_row_fails_the_job_naming_it(ray_mod, minilm_dir):
    ray, wren_ray = ray_mod
    texts = TEXTS[8:20]
    texts[5] = "word " * 300  # 302 tokens: past max_seq_length (256), and truncate=False forbids cutting it
    out = wren_ray.embed(dataset(ray, "text", texts), str(minilm_dir), concurrency=2, batch_size=4, id_column="id",
                         truncate=False, progress=False)
    with pytest.raises(Exception) as info, ray_data_log() as log:
        out.take_all()
    message = str(info.value)
    assert "BatchError" in message and re.search(r"1 of the \d+ rows of a batch failed", message)
    assert "id=5 ('word word" in message and "ContextOverflowError: the text has 302 tokens" in message
    assert " id=4 (" not in message and " id=6 (" not in message  # its batch-mates succeeded
    assert log and not any("Total Progress" in m for m in log), "progress=False hides Ray Data's progress"


def test_generate_greedy_equals_single_process(ray_mod, smollm2_path):
    ray, wren_ray = ray_mod
    out = wren_ray.generate(dataset(ray, "prompt", PROMPTS), smollm2_path, concurrency=2, n_threads=1, batch_size=3,
                            max_tokens=MAX_TOKENS, temperature=0.0, progress=False)
    rows = out.take_all()
    assert [r["id"] for r in rows] == list(range(len(PROMPTS)))
    with wrenlm.Model(smollm2_path, n_threads=2) as m:
        expected = [m.generate(p, max_tokens=MAX_TOKENS) for p in PROMPTS]
    assert [r["generated"] for r in rows] == expected


def test_generate_chat_records_failed_row(ray_mod, smollm2_path):
    ray, wren_ray = ray_mod
    questions = ["What is the capital of France?", "Name a primary color.", "Say hello.", "Count to three."]
    questions[2] = "Tell me about foxes. " * 40  # ~200 tokens with the template: past n_ctx=128
    out = wren_ray.generate(dataset(ray, "question", questions), smollm2_path, prompt_column="question", chat=True,
                            concurrency=2, batch_size=2, on_error="record", progress=False,
                            model_kwargs={"n_ctx": 128}, max_tokens=MAX_TOKENS)
    rows = out.take_all()
    assert [r["id"] for r in rows] == [0, 1, 2, 3]
    assert rows[2]["generated"] is None and rows[2]["error"].startswith("ContextOverflowError")
    with wrenlm.Model(smollm2_path, n_threads=2, n_ctx=128) as m:
        for k in (0, 1, 3):
            assert rows[k]["error"] is None
            assert rows[k]["generated"] == m.chat([{"role": "user", "content": questions[k]}], max_tokens=MAX_TOKENS)


def test_arguments(ray_mod, smollm2_path):
    """The default pool fills the cluster; bad arguments fail before any actor starts."""
    ray, wren_ray = ray_mod
    assert wren_ray._compute("embed", None, 1).min_size == 2  # 2 CPUs, 1 thread each
    assert wren_ray._compute("embed", None, 2).max_size == 1
    with pytest.raises(ValueError, match="n_threads=4, but the largest node of the Ray cluster has 2 CPUs"):
        wren_ray.embed(dataset(ray, "text", ["a"]), smollm2_path, n_threads=4)  # would wait forever for CPUs
    ds = dataset(ray, "prompt", PROMPTS[:2])
    with pytest.raises(TypeError, match="unknown option.*max_token"):
        wren_ray.generate(ds, smollm2_path, max_token=8)
    with pytest.raises(ValueError, match="on_error must be one of"):
        wren_ray.generate(ds, smollm2_path, on_error="ignore")
    with pytest.raises(ValueError, match="n_threads as an argument"):
        wren_ray.generate(ds, smollm2_path, model_kwargs={"n_threads": 2})
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        wren_ray.embed(ds, smollm2_path, concurrency=0)
    with pytest.raises(ValueError, match="ds must be a ray.data.Dataset"):
        wren_ray.embed(PROMPTS, smollm2_path)
    with pytest.raises(ValueError, match="model_kwargs .* apply when model is a path"):
        wren_ray.embed(ds, wrenlm.Model(smollm2_path, n_threads=1), model_kwargs={"n_ctx": 64})


def test_missing_model_file_is_named(ray_mod, tmp_path):
    ray, wren_ray = ray_mod
    missing = os.path.join(tmp_path, "absent.gguf")
    with pytest.raises(Exception, match="cannot load the model .*absent.gguf.* on node"):
        wren_ray.embed(dataset(ray, "text", ["a"]), missing, progress=False).take_all()
