"""The error hierarchy: everything that means bad input or settings, as opposed to a bug.

Every class here derives from :class:`AffectBenchError`; the stage entry points (``stages/_cli.py``)
and the command-line tools catch that one class and print its message through
:func:`pipeline.core.cli.report_error` — one line naming the file, the key or the item and what is
wrong — and exit 1. Anything else is a bug and keeps its traceback (storage OSErrors excepted: see
:class:`StorageError`).
Packages derive their own errors from these (``FaceError(BackboneError)``, ``FinetuneError(HeadError)``)
so that the hierarchy stays one tree.
"""

from __future__ import annotations

import errno
import os
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


WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
"""OSError codes that mean storage, not a bug: a full disk or quota, a read-only filesystem ..."""
STORAGE_ERRNOS = WRITE_ERRNOS | {errno.EACCES, errno.EPERM}
"""... or missing permission."""


class StorageError(AffectBenchError, OSError):
    """An output (or input) that the filesystem refuses: disk full, quota, permission, read-only.

    Names the path (``write()`` errors carry none, so :mod:`pipeline.core.io` adds the output's) and
    keeps ``errno``; an :class:`OSError`, so ``except OSError`` still catches it.
    """

    def __init__(self, path: str | Path | None, code: int, reason: str | None = None, action: str = "write"):
        OSError.__init__(self, code, reason or os.strerror(code), None if path is None else str(path))
        self.path = None if path is None else str(path)
        self.action = action

    def __str__(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"cannot {self.action}{where}: {self.strerror}"

    def __reduce__(self):
        return type(self), (self.path, self.errno, self.strerror, self.action)

    @classmethod
    def of(cls, err: OSError, path: str | Path | None = None) -> StorageError | None:
        """``err`` as a StorageError naming ``path`` (default: the file ``err`` names), or None for other
        OSErrors (bugs). Without ``path`` a permission error says "cannot access" (reading or writing)."""
        if isinstance(err, StorageError):
            return err
        if err.errno not in STORAGE_ERRNOS:
            return None
        if path is not None:
            name, action = path, "write"
        else:
            name = os.fsdecode(err.filename) if isinstance(err.filename, (str, bytes, os.PathLike)) else None
            action = "write" if err.errno in WRITE_ERRNOS else "access"
        reason = err.strerror if isinstance(err.strerror, str) and err.strerror else None
        return cls(name, err.errno, reason, action)
