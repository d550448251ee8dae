"""Layered features read a block of layers at a time: a ``layer: best`` sweep that never holds [N, L, D].

A WavLM-large store of 100k utterances is 100k × 25 × 1024 float32 = 10 GB; a sweep over its layers
only ever needs one layer (or a block of layers for the batched solver) at a time. :class:`LayerView`
stands for the [N, L, D] features a head is given: selecting rows (``X[fold.train]``) is lazy, and
``X[:, layer]`` or :meth:`LayerView.layers` reads just those layers from the store
(:meth:`pipeline.core.store.FeatureStore.layers`: memory-mapped chunks, after a streaming check of
the store's checksum), applies the per-layer transform (speaker normalisation, which is per
feature and so per layer) and then picks the rows. The last block read is kept, so a layer's train
and dev rows come from one read. :class:`pipeline.heads.probe.layers.BestLayer` sweeps a view layer
by layer (the reference path) or in blocks of :data:`BLOCK_BYTES` (the batched path), so peak memory
is about one block of every row plus the solver's working copies, whatever L.

Blocks are sized by :func:`block_layers`; a store smaller than one block is swept in one block, as
an in-memory array is, so results on such stores are unchanged (``tests/test_probe_stream.py``
checks streaming against in-memory results).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

BLOCK_BYTES = 512 << 20  # layers read at once by a batched sweep: about this many bytes of every row


def block_layers(n_rows: int, dim: int, n_layers: int, itemsize: int = 4, budget: int | None = None) -> int:
    """Layers per block so that a block of all rows is at most ``budget`` bytes (at least one)."""
    budget = BLOCK_BYTES if budget is None else budget
    return max(1, min(n_layers, budget // max(1, n_rows * dim * itemsize)))


class LayerSource:
    """Every row's features of a block of layers, read on demand (``read(a, b)`` → [N, b - a, D]) and
    transformed per layer; the last block is kept."""

    def __init__(self, read: Callable[[int, int], np.ndarray], n_rows: int, n_layers: int, dim: int,
                 transform: Callable[[np.ndarray], np.ndarray] | None = None):
        self._read, self.n_rows, self.n_layers, self.dim = read, n_rows, n_layers, dim
        self.transform = transform
        self._last: tuple[tuple[int, int], np.ndarray] | None = None
        self.reads = 0  # blocks read (tests, benchmarks)

    def block(self, a: int, b: int) -> np.ndarray:
        if self._last is not None and self._last[0] == (a, b):
            return self._last[1]
        self._last = None  # let the previous block go before reading the next
        data = np.asarray(self._read(a, b), np.float32)
        if self.transform is not None:
            for k in range(data.shape[1]):
                data[:, k] = self.transform(data[:, k])
        self.reads += 1
        self._last = ((a, b), data)
        return data


    def release(self) -> None:
        """Drop the kept block (its rows have been taken)."""
        self._last = None


class LayerView:
    """[n, L, D] features of some rows of a :class:`LayerSource`; layers are read when indexed."""

    ndim = 3
    dtype = np.dtype(np.float32)

    def __init__(self, source: LayerSource, rows: np.ndarray | None = None):
        self.source = source
        self.rows = np.arange(source.n_rows) if rows is None else np.asarray(rows, np.int64)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.rows), self.source.n_layers, self.source.dim)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: Any):
        if isinstance(key, tuple):
            if len(key) != 2 or not (isinstance(key[0], slice) and key[0] == slice(None)):
                raise TypeError("a LayerView is indexed as view[rows] or view[:, layer(s)]")
            layer = key[1]
            if isinstance(layer, (int, np.integer)):
                layer = int(layer) % self.source.n_layers
                return self.layers(layer, layer + 1)[:, 0]
            a, b, step = layer.indices(self.source.n_layers)
            if step != 1:
                raise TypeError("layer slices of a LayerView have step 1")
            return self.layers(a, b)
        return LayerView(self.source, self.rows[key])

    def layers(self, a: int, b: int) -> np.ndarray:
        """Layers ``[a, b)`` of these rows, [n, b - a, D] (a new array)."""
        return self.source.block(a, b)[self.rows]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Every layer at once (heads that need [N, L, D] in memory)."""
        out = self.layers(0, self.source.n_layers)
        return out if dtype is None else out.astype(dtype)


def is_view(X: Any) -> bool:
    return isinstance(X, LayerView)


def merge_details(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One ``layer_scores`` result from those of consecutive blocks of layers: per-layer lists are
    concatenated (also inside dicts, e.g. ``dev_uar_by_C``), counts summed, anything else kept."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key not in out:
                out[key] = list(value) if isinstance(value, list) else (
                    {k: list(v) for k, v in value.items()} if isinstance(value, dict) else value)
            elif isinstance(value, list):
                out[key].extend(value)
            elif isinstance(value, dict):
                for k, v in value.items():
                    out[key].setdefault(k, []).extend(v)
            elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                out[key] += value
    return out
