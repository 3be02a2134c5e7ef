"""The progress display of long CLI work (wrenlm.progress.Progress): its three modes on a fake stderr."""

from __future__ import annotations

import io

import pytest
from wrenlm import progress
from wrenlm.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_per_tenth() -> None:
    out = io.StringIO()
    p = Progress(1000, desc="embed", unit="texts", stream=out)
    for k in range(0, 1001, 7):
        p.update(k)
    p.update(1000)
    p.close("done")
    lines = out.getvalue().splitlines()
    percents = [int(line.split()[1].rstrip("%")) for line in lines[:-1]]
    assert [p // 10 for p in percents] == list(range(1, 11))  # one line as each tenth is passed
    assert lines[-2].startswith("embed: 100% 1000/1000 texts [") and lines[-1] == "done"


def test_plain_lines_per_step() -> None:
    out = io.StringIO()
    p = Progress(10, desc="bench", unit="s", steps=True, stream=out)
    for label, used in [("a", 0), ("a", 1), ("b", 5), ("b", 6), ("c", 9)]:
        p.update(used)
        p.describe(label)
    p.close()
    assert [line.split(":")[0] for line in out.getvalue().splitlines()] == ["a", "b", "c"]


def test_disabled_prints_nothing() -> None:
    out = Terminal()
    p = Progress(10, desc="x", unit="texts", enabled=False, stream=out)
    p.update(5)
    p.describe("y")
    p.close("summary")
    assert out.getvalue() == ""


def test_terminal_without_tqdm_rewrites_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "_tqdm", lambda: None)  # as without tqdm (whatever earlier tests imported)
    out = Terminal()
    p = Progress(4, desc="embed", unit="texts", stream=out)
    for k in range(1, 5):
        p.update(k)
    p.close("embedded 4 texts")
    text = out.getvalue()
    assert "\n" not in text.replace("embedded 4 texts\n", "")  # rewritten in place
    assert text.count("\r") == 5 and "embed: 100% 4/4 texts" in text and text.endswith("embedded 4 texts\n")


def test_terminal_with_tqdm() -> None:
    pytest.importorskip("tqdm")
    out = Terminal()
    p = Progress(4, desc="embed", unit="texts", stream=out)
    for k in range(1, 5):
        p.update(k)
    p.close("embedded 4 texts")
    text = out.getvalue()  # tqdm redraws at most every 0.1 s: the first state is drawn, then the summary
    assert "embed:" in text and "/4 texts" in text and text.endswith("embedded 4 texts\n")
