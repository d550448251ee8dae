"""How every entry point (stages and ``pipeline.tools``) reports an error: one ``error: ...`` line on
stderr, always on a line of its own, whatever a progress bar left on the current one.

A tqdm bar redraws with ``\\r`` and writes no newline until it closes, so an exception propagating out
of a loop leaves the cursor after the bar. :func:`fresh_line` closes the bars still open and, when
stderr's last character is not a newline, writes one. What was written last is known exactly inside
:func:`tracking_stderr` (the stages run in it); elsewhere a newline is written when a closed bar
left its line without one.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.core.errors import StorageError


class _TrackedStream:
    """A text stream proxy that remembers whether the last character written was a newline."""

    def __init__(self, stream: Any):
        self._stream = stream
        self.at_line_start = True

    def write(self, s: str) -> int:
        n = self._stream.write(s)
        if s:
            self.at_line_start = s.endswith("\n")
        return n

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def tracking_stderr() -> Iterator[None]:
    """Route ``sys.stderr`` through a proxy that knows whether a line is open; an exception leaving
    the block (a traceback coming) starts on a fresh line too."""
    before = sys.stderr
    if before is None or isinstance(before, _TrackedStream):
        yield
        return
    sys.stderr = _TrackedStream(before)
    try:
        yield
    except (Exception, KeyboardInterrupt):
        fresh_line()
        raise
    finally:
        if isinstance(sys.stderr, _TrackedStream) and sys.stderr._stream is before:
            sys.stderr = before


def _close_bars() -> bool:
    """Close the open tqdm bars; whether one left its line without a newline (``leave=False``)."""
    tqdm_std = sys.modules.get("tqdm.std")
    if tqdm_std is None:
        return False
    cleared = False
    for bar in list(getattr(tqdm_std.tqdm, "_instances", ())):
        if getattr(bar, "disable", True):
            continue
        leave = (abs(getattr(bar, "pos", 0)) == 0) if bar.leave is None else bar.leave
        with contextlib.suppress(Exception):
            bar.close()
            cleared = cleared or not leave
    return cleared


def fresh_line() -> None:
    """Make the next write to stderr start a line of its own."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    cleared = _close_bars()
    stream = sys.stderr
    if stream is None:
        return
    need = not stream.at_line_start if isinstance(stream, _TrackedStream) else cleared
    with contextlib.suppress(Exception):
        if need:
            stream.write("\n")
        stream.flush()


def report_error(err: BaseException | str, where: str | None = None) -> int:
    """Print ``error: <message>`` on a line of its own on stderr and return 1 (the exit status).

    ``where`` (the stage or tool) prefixes storage errors, whose path alone does not say who failed;
    other errors' messages already name the file, key or item.
    """
    message = str(err)
    if where and isinstance(err, StorageError):
        message = f"{where}: {message}"
    fresh_line()
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 1


def entry_name(func: Callable[..., Any]) -> str:
    """The name of the entry point ``func`` belongs to: ``stages.segment`` (also as ``__main__`` of
    ``python -m stages.segment``) → ``segment``; a script's file stem otherwise."""
    module = sys.modules.get(getattr(func, "__module__", "") or "")
    spec = getattr(module, "__spec__", None)
    name = getattr(spec, "name", None) or getattr(module, "__name__", None)
    if name and name != "__main__":
        parts = [p for p in name.split(".") if p != "__main__"]
        if parts:
            return parts[-1]
    file = getattr(module, "__file__", None) or (sys.argv[0] if sys.argv else None)
    return Path(file).stem if file and file != "-c" else "stage"
