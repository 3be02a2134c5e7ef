"""Command line: wrenlm generate | chat | fetch | info."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, Optional


def _sampling_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", help="GGUF file (default: SmolLM2-135M-Instruct Q4_1, fetched once)")
    p.add_argument("--max-tokens", "-n", type=int, default=256, help="new tokens at most (default 256)")
    p.add_argument("--temperature", "-t", type=float, default=0.8, help="0 is greedy (default 0.8)")
    p.add_argument("--top-k", type=int, default=40, help="keep the k most likely tokens; 0 = off (default 40)")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass (default 0.95)")
    p.add_argument("--min-p", type=float, default=0.05, help="drop tokens below min-p x the top (default 0.05)")
    p.add_argument("--repeat-penalty", type=float, default=1.1, help="1 = off (default 1.1)")
    p.add_argument("--seed", type=int, default=None, help="random seed, for reproducible output")
    p.add_argument("--stop", action="append", default=None, help="stop string (repeatable); not printed")
    p.add_argument("--greedy", action="store_true", help="deterministic: same as --temperature 0")
    p.add_argument("--n-ctx", type=int, default=2048, help="context window in tokens (default 2048)")
    p.add_argument("--threads", type=int, default=None, help="compute threads (default: physical cores)")


def _sampling(args: argparse.Namespace) -> dict[str, Any]:
    return dict(max_tokens=args.max_tokens, temperature=0.0 if args.greedy else args.temperature,
                top_k=args.top_k, top_p=args.top_p, min_p=args.min_p, repeat_penalty=args.repeat_penalty,
                seed=args.seed, stop=args.stop)


def _load(args: argparse.Namespace) -> Any:
    import wrenlm

    return wrenlm.Model(args.model, n_ctx=args.n_ctx, n_threads=args.threads)


def _generate(args: argparse.Namespace) -> int:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    model = _load(args)
    try:
        for piece in model.stream(prompt, **_sampling(args)):
            sys.stdout.write(piece)
            sys.stdout.flush()
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        return 130
    sys.stdout.write("\n")
    return 0


def _chat(args: argparse.Namespace) -> int:
    model = _load(args)
    history: list[dict[str, str]] = []
    if args.system:
        history.append({"role": "system", "content": args.system})
    base = list(history)
    print(f"{model}\nType a message; /reset clears the conversation, /exit (or Ctrl-D) quits. "
          "Ctrl-C stops a reply.", file=sys.stderr)
    while True:
        try:
            line = input("> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        text = line.strip()
        if not text:
            continue
        if text == "/exit":
            return 0
        if text == "/reset":
            history = list(base)
            print("(conversation cleared)", file=sys.stderr)
            continue
        history.append({"role": "user", "content": line})
        reply = []
        try:
            for piece in model.chat(history, stream=True, **_sampling(args)):
                reply.append(piece)
                sys.stdout.write(piece)
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass
        print()
        history.append({"role": "assistant", "content": "".join(reply)})


def _fetch(args: argparse.Namespace) -> int:
    from wrenlm import hub

    print(hub.cached_default_model() or hub.fetch_default_model())
    return 0


def _info(args: argparse.Namespace) -> int:
    model = _load(args)
    print(model)
    for k, v in model.info.items():
        print(f"  {k}: {v}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wrenlm", description="Fast CPU inference for GGUF language models.")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="continue a prompt, streaming to stdout")
    _sampling_flags(g)
    g.add_argument("prompt", help="the prompt text ('-' reads stdin)")
    g.set_defaults(func=_generate)
    c = sub.add_parser("chat", help="interactive chat with the model's chat template")
    _sampling_flags(c)
    c.add_argument("--system", help="system message")
    c.set_defaults(func=_chat)
    f = sub.add_parser("fetch", help="download the default model into the cache and print its path")
    f.set_defaults(func=_fetch)
    i = sub.add_parser("info", help="describe a model")
    i.add_argument("--model", "-m")
    i.add_argument("--n-ctx", type=int, default=0)
    i.add_argument("--threads", type=int, default=1)
    i.set_defaults(func=_info)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except Exception as e:
        import wrenlm
        from wrenlm import hub

        if not isinstance(e, (ValueError, FileNotFoundError, wrenlm.WrenError, hub.DownloadError)):
            raise
        print(f"wrenlm: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
