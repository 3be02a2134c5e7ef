"""`wrenlm bench`, run as a subprocess on SmolLM2 with a tiny budget. A measurement tool: no speed is
asserted, only the shape of its report and that its counts add up (every sequence made exactly the
tokens asked for, rates are the counted tokens over the measured time, times are positive)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from test_cli import assert_clean_error, wrenlm_cmd

FAST = ["--threads", "1", "--prompt-tokens", "48", "--tokens", "6"]


def bench(model: str, *args: str) -> Any:
    return wrenlm_cmd("bench", "--model", model, *args, timeout=120)


def test_json_counts_add_up(smollm2_path: str, smollm2: Any) -> None:
    r = bench(smollm2_path, *FAST, "--seconds", "1", "--concurrency", "1,3", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    info = smollm2.info
    assert report["model"] == Path(smollm2_path).name
    assert (report["architecture"], report["quant"], report["n_params"]) == (info["architecture"], info["quant"],
                                                                               info["n_params"])
    assert report["threads"] == 1 and report["budget_seconds"] == 1.0 and report["elapsed_seconds"] > 0
    rows = report["measurements"]
    assert [(m["name"], m["sequences"]) for m in rows] == [("prefill", 1), ("decode", 1), ("decode", 3)]
    for m in rows:
        assert m["runs"] >= 1
        assert m["seconds"] > 0 and m["ttft_ms"] > 0
        assert math.isclose(m["tokens_per_second"], m["measured_tokens"] / m["seconds"], rel_tol=1e-9)
        # Every sequence of every run made exactly the tokens asked for (end-of-generation ignored).
        assert m["generated"] == m["runs"] * m["sequences"] * m["tokens"]
    prefill, *decode = rows
    assert (prefill["prompt_tokens"], prefill["tokens"]) == (48, 1)
    assert prefill["measured_tokens"] == prefill["runs"] * 48
    # Prefill runs are timed to their one token: seconds is the sum of the times to first token.
    assert math.isclose(prefill["seconds"], prefill["runs"] * prefill["ttft_ms"] / 1000, rel_tol=1e-9)
    for m in decode:
        assert (m["prompt_tokens"], m["tokens"]) == (32, 6)
        # Decode counts the tokens after each sequence's first one.
        assert m["measured_tokens"] == m["runs"] * m["sequences"] * 5
    # Progress on stderr (not a terminal): a line as each measurement starts.
    for label in ("bench: prefill, 1 sequence:", "bench: decode, 1 sequence:", "bench: decode, 3 sequences:"):
        assert label in r.stderr, r.stderr


def test_table(smollm2_path: str) -> None:
    r = bench(smollm2_path, *FAST, "--seconds", "0.5", "--concurrency", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"{Path(smollm2_path).name}: llama, 135M params, Q4_1; 1 thread; ")
    assert lines[1].split() == ["test", "sequences", "prompt", "tok", "new", "tok", "runs", "tok/s", "TTFT", "ms"]
    assert set(lines[2].replace(" ", "")) == {"-"}
    rows = [line.split() for line in lines[3:5]]
    assert [r[:4] for r in rows] == [["prefill", "1", "48", "1"], ["decode", "2", "32", "6"]]
    for row in rows:
        assert int(row[4]) >= 1 and float(row[5]) > 0 and float(row[6]) > 0
    assert lines[5].startswith("tok/s: prefill = prompt tokens per second")


@pytest.mark.parametrize("args,fragment", [
    (["--seconds", "0"], "--seconds must be > 0"),
    (["--tokens", "1"], "--tokens must be at least 2"),
    (["--concurrency", "1,x"], "--concurrency"),
    (["--concurrency", "0"], "1..256"),
])
def test_bad_options(args: list[str], fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In-process (the same main() as the subprocess runs): rejected before the model is opened."""
    from wrenlm import cli

    try:
        status = cli.main(["bench", "--model", str(tmp_path / "never-opened.gguf"), *args])
    except SystemExit as e:  # argparse's own checks exit
        status = e.code
    assert status == 2
    out, err = capsys.readouterr()
    assert out == "" and "wrenlm: error: " in err and fragment in err, err


def test_errors(smollm2_path: str, minilm_dir: Path, tmp_path: Path) -> None:
    assert_clean_error(bench(str(tmp_path / "never-opened.gguf"), "--seconds", "-1"), "--seconds must be > 0")
    assert_clean_error(bench(smollm2_path, "--threads", "1", "--prompt-tokens", "600", "--n-ctx", "512"),
                       "exceeds the context window n_ctx=512")
    assert_clean_error(bench(str(minilm_dir), "--threads", "1"), "needs a causal language model")


def test_benchmark_run_checks_its_model(smollm2_path: str) -> None:
    """The library entry point refuses a model whose prefix cache would serve the repeated prompts."""
    import wrenlm
    from wrenlm import benchmark

    with wrenlm.Model(smollm2_path, n_threads=1) as m:  # cache_mb defaults to 256
        with pytest.raises(ValueError, match="cache_mb=0"):
            benchmark.run(m, seconds=1)
    assert re.match(r"\S", benchmark.cpu_name())
