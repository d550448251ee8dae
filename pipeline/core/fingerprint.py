"""Content digests of corpus files, recomputed only when a file's ``stat`` changes.

Media and label files live outside the repository (``corpora.<name>.root``), so they are inputs
that DVC cannot cache. To notice an edited, replaced, added or removed file without reading a
100 GB corpus on every run, each file's digest is kept in a small state database beside the embed
cache (``.cache/fingerprint/state.sqlite``), keyed by its path and valid while its ``(size,
mtime_ns, inode, device)`` is unchanged — the approach DVC's own state database takes. A file is
read (BLAKE2b of its whole content) only when it is new or its stat changed; deleting the state
database only costs one re-read. Digests are of content, so they are the same on every machine.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Iterable

from pipeline.core.errors import MediaError

STATE_ENV = "AFFECTBENCH_FINGERPRINT_STATE"
DEFAULT_STATE = Path(".cache/fingerprint/state.sqlite")


def state_path() -> Path:
    return Path(os.environ.get(STATE_ENV) or DEFAULT_STATE)


def file_digest(path: str | Path) -> str:
    """BLAKE2b-128 of a file's whole content."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def _stat_key(st: os.stat_result) -> str:
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{st.st_dev}"


def digests(paths: Iterable[str | Path], state: str | Path | None = None) -> dict[str, str]:
    """``path → content digest`` for every distinct path, reading only files whose stat changed.

    Paths are taken as given (symlinks are followed for reading and for ``stat``, so replacing a
    link's target is noticed). A missing file maps to ``""``: the segment stage reports it with its
    ``on_bad_media`` policy, like any other unreadable medium.
    """
    wanted = sorted({str(p) for p in paths if p})
    state = Path(state) if state is not None else state_path()
    state.parent.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}
    with sqlite3.connect(state, timeout=60) as db:
        db.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, stat TEXT NOT NULL, digest TEXT NOT NULL)")
        known = {p: (s, d) for p, s, d in db.execute("SELECT path, stat, digest FROM files")}
        fresh = []
        for p in wanted:
            key = os.path.abspath(p)
            try:
                st = os.stat(p)
            except FileNotFoundError:
                out[p] = ""
                continue
            except OSError as err:
                raise MediaError(p, f"cannot stat ({err.strerror})") from err
            stat = _stat_key(st)
            hit = known.get(key)
            if hit and hit[0] == stat:
                out[p] = hit[1]
                continue
            try:
                out[p] = file_digest(p)
            except OSError as err:
                raise MediaError(p, f"cannot read ({err.strerror})") from err
            fresh.append((key, stat, out[p]))
        db.executemany("INSERT OR REPLACE INTO files (path, stat, digest) VALUES (?, ?, ?)", fresh)
    return out
