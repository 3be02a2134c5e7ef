"""Progress bars for long work: fetching the default model, loading a large file, embedding many texts.

Each such call takes ``progress``: True shows a bar, False shows nothing, None (the default) shows one
only for work that turns out long: the bar appears once the work has run for :data:`AUTO_DELAY`
seconds, so quick calls stay quiet.

The bar is ``tqdm.auto``'s when tqdm is installed (``pip install wrenlm[notebook]``): a widget in
Jupyter when ipywidgets is there, text elsewhere. Without tqdm, a single line rewritten in place on
stderr shows the same figures (fraction, count, rate), so the core needs no extra dependency.
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import Any, Optional

ProgressArg = Optional[bool]

AUTO_DELAY = 1.0  # seconds of work after which progress=None shows its bar
_TEXT_INTERVAL = 0.2  # seconds between two redraws of the plain-text bar


def check(progress: Any) -> ProgressArg:
    """progress, checked: True, False or None."""
    if progress is not None and not isinstance(progress, bool):
        raise ValueError(f"progress must be True, False or None (only when the work is long), got {progress!r}")
    return progress


def _tqdm() -> Any:
    """tqdm.auto's class, or None without tqdm."""
    try:
        with warnings.catch_warnings():
            # In a notebook without ipywidgets tqdm.auto warns, then draws text bars: those are fine.
            warnings.simplefilter("ignore")
            from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def _size(n: float, unit: str) -> str:
    if unit != "B":
        return f"{n:.0f}"
    for prefix in ("", "k", "M", "G"):
        if abs(n) < 1000:
            return f"{n:.0f} {prefix}B" if prefix == "" else f"{n:.1f} {prefix}B"
        n /= 1000
    return f"{n:.1f} TB"


class _TextBar:
    """The fallback without tqdm: one line on stderr, redrawn at most every 0.2 s."""

    def __init__(self, desc: str, total: Optional[float], unit: str, delay: float) -> None:
        self.desc, self.total, self.unit, self.delay = desc, total, unit, delay
        self.n = 0.0
        self.start = time.monotonic()
        self.drawn_at: Optional[float] = None

    def update(self, n: float) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.start >= self.delay and (self.drawn_at is None or now - self.drawn_at >= _TEXT_INTERVAL):
            self._draw(now)

    def _draw(self, now: float) -> None:
        self.drawn_at = now
        rate = self.n / max(now - self.start, 1e-9)
        done = _size(self.n, self.unit)
        if self.total:
            line = f"{self.desc}: {100 * self.n / self.total:3.0f}% {done}/{_size(self.total, self.unit)}"
        else:
            line = f"{self.desc}: {done}"
        line += f" [{_size(rate, self.unit)}/s]" if self.unit == "B" else f" {self.unit} [{rate:.1f}/s]"
        try:
            sys.stderr.write("\r" + line)
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):  # no usable stderr: no bar
            pass

    def close(self) -> None:
        if self.drawn_at is not None:
            self._draw(time.monotonic())
            try:
                sys.stderr.write("\n")
                sys.stderr.flush()
            except (AttributeError, OSError, ValueError):
                pass


class Bar:
    """A progress bar that shows itself as ``show`` says (see the module docstring).

    Args:
        desc: what is being done, e.g. ``"embedding"``.
        total: units of the whole work, None when unknown.
        unit: ``"B"`` (bytes: shown in kB, MB, GB) or the name of one item, e.g. ``"text"``.
        show: True (at once), None (after :data:`AUTO_DELAY` seconds of work) or False (never).

    Example:
        >>> with Bar("embedding", total=len(texts), unit="text", show=None) as bar:
        ...     for batch in batches:
        ...         bar.update(len(batch))
    """

    def __init__(self, desc: str, *, total: Optional[float], unit: str = "it", show: ProgressArg) -> None:
        self._bar: Any = None
        self.n = 0.0
        if show is False:
            return
        delay = 0.0 if show else AUTO_DELAY
        tqdm = _tqdm()
        if tqdm is None:
            self._bar = _TextBar(desc, total, unit, delay)
        else:
            self._bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "B", delay=delay, leave=True,
                             dynamic_ncols=True)

    def update(self, n: float) -> None:
        """Adds n units of work done."""
        self.n += n
        if self._bar is not None:
            self._bar.update(n)

    def update_to(self, done: float) -> None:
        """Sets the work done so far to done units (never backwards)."""
        if done > self.n:
            self.update(done - self.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
