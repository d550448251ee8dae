"""Progress over a head's grid of fits (C values, C × gamma, alpha; × layers for ``layer: best``).

A probe's fit is one loop over its grid, and on wide features (ComParE: 6,373 dims) one grid point
can take many seconds; the runner's bar moves once per fold, so the bar a user watches is this one.
A head opens :func:`grid_bar` around its loop and calls ``step()`` after each fit. Opened inside
another one that counts the inner grid points (``per_point=True``: :class:`~.layers.BestLayer`'s
bar of layers × grid points), it opens no second bar and advances the enclosing one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm


@dataclass
class _Open:
    bar: Any
    per_point: bool  # whether inner heads' grid points advance it


_open: ContextVar[_Open | None] = ContextVar("grid_bar", default=None)


@contextlib.contextmanager
def grid_bar(desc: str, total: int, *, unit: str = "fit", per_point: bool = True) -> Iterator[Callable[[], None]]:
    """Yield ``step()``, which advances a progress bar of ``total`` grid points by one.

    Nested in an open bar: ``step`` advances that bar when it counts grid points (``per_point``),
    else does nothing (the enclosing bar counts something coarser, e.g. layers).
    """
    outer = _open.get()
    if outer is not None:
        yield (lambda: outer.bar.update(1)) if outer.per_point else (lambda: None)
        return
    bar = tqdm(total=total, desc=desc, unit=unit, leave=False, disable=total <= 1)
    token = _open.set(_Open(bar, per_point))
    try:
        yield lambda: bar.update(1)
    finally:
        _open.reset(token)
        bar.close()
