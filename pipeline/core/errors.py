"""The error hierarchy: everything that means bad input or settings, as opposed to a bug.

Every class here derives from :class:`AffectBenchError`; the stage entry points (``stages/_cli.py``)
and the command-line tools catch that one class and print its message — one line naming the file,
the key or the item and what is wrong — and exit 1. Anything else is a bug and keeps its traceback.
Packages derive their own errors from these (``FaceError(BackboneError)``, ``FinetuneError(HeadError)``)
so that the hierarchy stays one tree.
"""

from __future__ import annotations

from pathlib import Path


class AffectBenchError(Exception):
    """Bad input or settings; the message says which file, key or item and what is wrong."""


class ConfigError(AffectBenchError, ValueError):
    """A params.yaml problem: names the key, the value and what is allowed."""


class ManifestError(AffectBenchError, ValueError):
    """An invalid corpus: the message names the file (and line) and the problem."""


class MediaError(AffectBenchError):
    """A media file that cannot be decoded; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class StoreError(AffectBenchError):
    """A missing, incomplete or inconsistent store (features, segments, cache); names the path."""


class BackboneError(AffectBenchError):
    """A backbone that cannot be built or run; the message says which and why."""


class HeadError(AffectBenchError):
    """A head that cannot be trained or evaluated on the data it was given."""
