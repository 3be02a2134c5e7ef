"""``wrenlm embed``: embedding vectors of texts from the command line.

Texts come from the arguments, from ``--file PATH`` (one text per line; ``-`` is stdin), or from stdin
when neither is given and stdin is not a terminal. Vectors go to stdout as JSON lines, one object
``{"index": k, "embedding": [...]}`` per text in input order, or with ``--output FILE.npy`` into a
float32 ``(n, dim)`` numpy array (row k = text k). They are what ``Model.embed`` returns.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any, Optional, TextIO

DESCRIPTION = """\
Embed texts with an embedding model (a sentence-transformers folder such as all-MiniLM-L6-v2, a BERT
GGUF file, or any model: decoders pool their last token). Texts: TEXT arguments, --file PATH (one text
per line, blank lines skipped; '-' reads stdin), or stdin when no TEXT is given and stdin is not a
terminal. Output: JSON lines on stdout, one {"index": k, "embedding": [float, ...]} per text in input
order (k from 0); or --output FILE.npy: a float32 numpy array (texts, dim) whose row k is text k (any
other --output name gets the JSON lines). Progress goes to stderr when there is more than one batch:
a live bar on a terminal, else a line per tenth of the texts."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("texts", metavar="TEXT", nargs="*", help="texts to embed (each argument one text)")
    p.add_argument("--file", metavar="PATH",
                   help="read texts from PATH, one per line (UTF-8; blank lines skipped); '-': stdin")
    p.add_argument("--output", "-o", metavar="PATH",
                   help="write to PATH instead of stdout: a .npy name gets a float32 (texts, dim) array, any "
                        "other name JSON lines (an existing file is replaced)")
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help="unit-length vectors (default: as the model says: a sentence-transformers folder "
                        "normalizes when it ends with a Normalize module; other models normalize)")
    p.add_argument("--pooling", metavar="MODE", default=None,
                   help="mean, cls, last, max, weightedmean or mean_sqrt_len (default: what the model declares)")
    p.add_argument("--batch-size", type=int, default=32, metavar="N",
                   help="texts computed per batch (default 32)")
    p.add_argument("--truncate", action=argparse.BooleanOptionalAction, default=None,
                   help="cut inputs longer than the model takes (--no-truncate: an error instead; default: "
                        "cut to a sentence-transformers folder's max_seq_length, an error past --n-ctx)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")


def read_texts(args: argparse.Namespace, read_text: Any, stdin: TextIO) -> list[str]:
    """The texts to embed, from the arguments, --file or stdin; ValueError naming the source when
    there are none. read_text(path) reads a UTF-8 file ('-': stdin)."""
    if args.texts and args.file is not None:
        raise ValueError("give texts as arguments or with --file, not both")
    if args.texts:
        return list(args.texts)
    if args.file is not None:
        source = "stdin" if args.file == "-" else args.file
        try:
            content = read_text(args.file)
        except FileNotFoundError:
            raise ValueError(f"--file {args.file}: no such file") from None
        except IsADirectoryError:
            raise ValueError(f"--file {args.file} is a folder; give a text file") from None
    elif stdin is None or stdin.isatty():
        raise ValueError("no texts to embed: give them as arguments, with --file PATH, or on stdin")
    else:
        source, content = "stdin", read_text("-")
    texts = [line[:-1] if line.endswith("\r") else line for line in content.split("\n")]
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError(f"no texts to embed: {source} has no non-blank line")
    return texts


def check_options(args: argparse.Namespace) -> None:
    """Rejects bad option values before the model is loaded (the library checks them again)."""
    from wrenlm.model import _POOLING_TYPES

    if args.pooling is not None and args.pooling not in _POOLING_TYPES:
        raise ValueError(f"--pooling must be one of {', '.join(_POOLING_TYPES)}, got {args.pooling!r}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.output is not None:
        folder = os.path.dirname(os.path.abspath(args.output))
        if os.path.isdir(args.output):
            raise ValueError(f"--output {args.output} is a folder; give a file name")
        if not os.path.isdir(folder):
            raise ValueError(f"--output {args.output}: the folder {folder} does not exist")


def json_line(index: int, vector: Any) -> str:
    """One JSON object per text; each float written as the shortest decimal that reads back as the
    same float32."""
    return '{"index": ' + str(index) + ', "embedding": [' + ", ".join(map(str, vector)) + "]}\n"


def embed_to(model: Any, texts: Sequence[str], args: argparse.Namespace, out: Optional[TextIO]) -> Any:
    """Embeds texts batch by batch with progress; JSON lines go to out as they are computed (out None:
    the vectors are returned as one float32 array instead)."""
    import numpy as np

    from wrenlm._progress import Progress

    n, batch = len(texts), args.batch_size
    progress = Progress(n, desc="embed", unit="texts", enabled=not args.quiet and n > batch)
    start = time.perf_counter()
    parts = []
    try:
        for first in range(0, n, batch):
            vecs = model.embed(list(texts[first:first + batch]), normalize=args.normalize, pooling=args.pooling,
                               batch_size=batch, truncate=args.truncate)
            vecs = np.asarray(vecs, dtype=np.float32)
            if out is not None:
                out.write("".join(json_line(first + k, v) for k, v in enumerate(vecs)))
                out.flush()
            else:
                parts.append(vecs)
            progress.update(first + len(vecs))
    except BaseException:
        progress.close()  # the bar goes before the error message is printed
        raise
    elapsed = time.perf_counter() - start
    progress.close(f"embedded {n} texts in {elapsed:.1f} s ({n / max(elapsed, 1e-9):.1f} texts/s)")
    return np.concatenate(parts, axis=0) if out is None else None


def _replace_atomically(path: str, write: Any, binary: bool) -> None:
    """Writes path through a temporary file beside it, renamed at the end: an error or Ctrl-C leaves
    no partial file (and an existing one unchanged)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".wrenlm-embed-", suffix=".tmp")
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def run(args: argparse.Namespace, load: Any, read_text: Any) -> int:
    """The command: load(args) opens the model; read_text as for read_texts."""
    check_options(args)
    texts = read_texts(args, read_text, sys.stdin)
    with load(args) as model:
        if args.output is None:
            embed_to(model, texts, args, sys.stdout)
        elif args.output.lower().endswith(".npy"):
            import numpy as np

            vecs = embed_to(model, texts, args, None)
            _replace_atomically(args.output, lambda f: np.save(f, vecs), binary=True)
        else:
            _replace_atomically(args.output, lambda f: embed_to(model, texts, args, f), binary=False)
    return 0
