"""Progress of long command-line work, on stderr (stdout stays for results).

On a terminal: a live bar (tqdm when installed, else one status line rewritten in place). Elsewhere
(a pipe, a log file): plain lines, few enough for a log: one each time another tenth of the work is
done, or (``steps=True``) one per step, when the label changes. Disabled: nothing at all.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Optional, TextIO


class Progress:
    """Reports ``done`` out of ``total`` (counts or seconds, named by ``unit``) under a label."""

    def __init__(self, total: float, *, desc: str, unit: str, enabled: bool = True, steps: bool = False,
                 stream: Optional[TextIO] = None) -> None:
        self.total = max(float(total), 1e-9)
        self.desc = desc
        self.unit = unit
        self.enabled = enabled
        self.steps = steps
        self.stream = stream if stream is not None else sys.stderr
        self.tty = enabled and bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.done = 0.0
        self._tenth = 0  # tenths of the work reported so far (plain lines)
        self._bar: Any = None
        if self.tty:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=self.total, desc=desc, file=self.stream, leave=False,
                                 bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} " + unit
                                            + (" [{elapsed}]" if steps else " [{elapsed}<{remaining}]"))

    def describe(self, desc: str) -> None:
        """A new label (the step now running)."""
        changed, self.desc = desc != self.desc, desc
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_description_str(desc, refresh=True)
        elif self.tty:
            self._draw()
        elif self.steps and changed:
            self._print(self._line())

    def update(self, done: float) -> None:
        """done: the work finished so far (absolute, not an increment); capped at total."""
        if not self.enabled:
            return
        done = min(float(done), self.total)
        step, self.done = done - self.done, done
        if self._bar is not None:
            self._bar.update(step)
        elif self.tty:
            self._draw()
        elif not self.steps:
            tenth = int(10 * done / self.total + 1e-9)
            if tenth > self._tenth:
                self._tenth = tenth
                self._print(self._line())

    def close(self, summary: Optional[str] = None) -> None:
        """Ends the display; summary (a one-line result) is printed when enabled."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.tty:
            self.stream.write("\r\033[K")
        if summary:
            self.stream.write(summary + "\n")
        self.stream.flush()
        self.enabled = False

    def _line(self) -> str:
        elapsed = time.perf_counter() - self.start
        left = ""
        if 0.05 * self.total <= self.done < self.total:
            left = f", ~{elapsed * (self.total - self.done) / self.done:.0f} s left"
        return (f"{self.desc}: {100 * self.done / self.total:3.0f}% {self.done:.0f}/{self.total:.0f} {self.unit} "
                f"[{elapsed:.1f} s{left}]")

    def _print(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def _draw(self) -> None:
        self.stream.write("\r\033[K" + self._line())
        self.stream.flush()
