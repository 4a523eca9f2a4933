"""Progress of a long command on stderr: one line redrawn on a terminal, a line every few
seconds elsewhere (no control sequences in a log)."""

from __future__ import annotations

import sys
import time

BAR_WIDTH = 30
REDRAW_S = 0.2


class Progress:
    """``what`` done so far, with a bar when the total is known."""

    def __init__(self, command: str, what: str, total: int | None = None,
                 every_s: float = 5.0) -> None:
        self.command, self.what, self.total = command, what, total
        self.started = self.said = time.monotonic()
        self.every_s = every_s
        self.terminal = sys.stderr.isatty()

    def __call__(self, done: int, note: str = "") -> None:
        now = time.monotonic()
        if now - self.said < (REDRAW_S if self.terminal else self.every_s):
            return
        self.said = now
        line = f"{self.command}: {self.what} {done:,}"
        if self.total:
            filled = BAR_WIDTH * done // self.total
            line = (f"{self.command}: [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
                    f"{100 * done // self.total:3d}% {self.what} {done:,} of {self.total:,}")
        line += f" ({now - self.started:.1f} s){'  ' + note if note else ''}"
        if self.terminal:
            print("\r\033[K" + line, end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def done(self) -> None:
        """End the redrawn line."""
        if self.terminal:
            print(file=sys.stderr, flush=True)
