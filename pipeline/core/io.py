"""Atomic outputs: a killed stage never leaves something that looks finished.

Everything is written to a temporary sibling and renamed into place at the end; ``os.replace`` of a
file is atomic on POSIX, and a directory swap leaves at worst no output (never a partial one).

Temporaries are named ``.<name>.tmp-<pid>@<origin>~<random>``: the writer's pid and where that pid
means something (``<origin>`` = host name + pid namespace, so a shared filesystem or a container's
volume never has one machine judge another's pids). A kill -9 leaves its temporary behind; the next
write of the same output removes it (:func:`remove_stale_temps` does so for a whole directory), but
never a temporary whose writer is still alive:

* same origin: stale once the pid is gone (``os.kill(pid, 0)`` → ``ProcessLookupError``); this
  process's own temporaries are stale only once it no longer has them open;
* other origin (another host, another container): the pid cannot be checked there, so one in which
  nothing changed for :data:`FOREIGN_STALE_S` is stale (writers open a temporary only to write
  into it — a cache shard, a store — never while they compute);
* old-style names without a pid (written before this scheme): stale when nothing in them changed for
  :data:`LEGACY_STALE_S`.

Disk-full, quota, permission and read-only-filesystem errors while writing become a
:class:`~pipeline.core.errors.StorageError` naming the output (``write()`` errors carry no file name).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.core.errors import StorageError

FOREIGN_STALE_S = 3600.0
"""A temporary of another host or pid namespace with nothing modified for this long is a dead writer's."""
LEGACY_STALE_S = 24 * 3600.0
"""An old-style temporary (no pid in its name) with nothing modified for this long is stale."""

# `.<name>.tmp-<pid>@<origin>~<8 random>` (this scheme) or `.<name>.tmp-<8 random>` (tempfile's, before it)
_SUFFIX = r"(?:(?P<pid>\d+)@(?P<origin>[A-Za-z0-9.+-]*)~)?[a-z0-9_]{8}"
_TEMP = re.compile(rf"\.(?P<name>.+)\.tmp-{_SUFFIX}")
_TEMP_SUFFIX = re.compile(_SUFFIX)

_lock = threading.Lock()
_live: dict[str, str] = {}  # this process's open temporaries: name -> absolute path


def _after_fork_in_child() -> None:
    global _lock, _live
    _lock, _live = threading.Lock(), {}  # the parent's temporaries are not the child's to keep


os.register_at_fork(after_in_child=_after_fork_in_child)


def _origin() -> str:
    """Where a pid is meaningful: the host name plus, on Linux, the pid namespace (containers)."""
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:64]
    with contextlib.suppress(OSError):
        ns = re.sub(r"\D", "", os.readlink("/proc/self/ns/pid"))
        if ns:
            host += f"+{ns}"
    return host


_ORIGIN = _origin()


def _prefix(final: Path) -> str:
    return f".{final.name}.tmp-{os.getpid()}@{_ORIGIN}~"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _discard(path: Path) -> None:
    """Best-effort removal of a temporary (another process may be removing it too)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, another user's
        return True
    try:  # a killed writer nobody reaped (a container without an init) is a zombie: dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _touched_since(path: Path, cutoff: float, deep: bool) -> bool:
    """Whether ``path`` (and with ``deep`` anything below it) was modified after ``cutoff``."""
    try:
        if path.lstat().st_mtime > cutoff:
            return True
    except FileNotFoundError:
        return False
    if not deep or path.is_symlink() or not path.is_dir():
        return False
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(os.path.join(root, name)).st_mtime > cutoff:
                    return True
    return False


def _is_stale(path: Path, match: re.Match, now: float) -> bool:
    pid, origin = match.group("pid"), match.group("origin")
    if pid is None:  # old-style name: written without heartbeats, so look at everything in it
        return not _touched_since(path, now - LEGACY_STALE_S, deep=True)
    if origin != _ORIGIN:  # another host or container: judged by the age of what is in it
        return not _touched_since(path, now - FOREIGN_STALE_S, deep=True)
    pid = int(pid)
    if pid == os.getpid():
        with _lock:
            return path.name not in _live
    if not 0 < pid < 2**31:
        return not _touched_since(path, now - FOREIGN_STALE_S, deep=False)
    return not _pid_alive(pid)


def _stale_temps(directory: Path, name: str | None = None) -> list[Path]:
    prefix = None if name is None else f".{name}.tmp-"
    now = time.time()
    stale = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        if prefix is not None:
            m = _TEMP_SUFFIX.fullmatch(entry.name[len(prefix):]) if entry.name.startswith(prefix) else None
        else:
            m = _TEMP.fullmatch(entry.name)
        if m is not None and _is_stale(Path(entry.path), m, now):
            stale.append(Path(entry.path))
    return stale


def temp_sibling(final: str | Path) -> Path:
    """A fresh temporary name beside ``final`` in this module's scheme, for writers that build
    something atomic_dir/atomic_file cannot (a symlink): stale ones are cleaned up like any other."""
    final = Path(final)
    for path in _stale_temps(final.parent, final.name):
        _discard(path)
    return final.parent / (_prefix(final) + os.urandom(4).hex())


def remove_stale_temps(directory: str | Path) -> list[Path]:
    """Remove every stale temporary directly inside ``directory`` (of any output); return them.

    Temporaries that a live process may still be writing are kept (see the module docstring).
    """
    removed = _stale_temps(Path(directory))
    for path in removed:
        _discard(path)
    return removed


def _is_ours(filename: str, final: Path, tmp: Path | None) -> bool:
    """Whether an error's file name is ``final``, one of its parents, or (in) one of its temporaries."""
    path = Path(os.path.abspath(filename))
    out = Path(os.path.abspath(final))
    if path == out or path in out.parents:
        return True
    if tmp is not None and (path == Path(os.path.abspath(tmp)) or Path(os.path.abspath(tmp)) in path.parents):
        return True
    return path.parent == out.parent and path.name.startswith(f".{out.name}.tmp-")


@contextlib.contextmanager
def _converted(final: Path, tmp: Path | None = None) -> Iterator[None]:
    """Raise storage OSErrors as a StorageError naming ``final`` (or the other file the error names)."""
    try:
        yield
    except StorageError:
        raise
    except OSError as err:
        name = err.filename
        if isinstance(name, (str, bytes, os.PathLike)) and not _is_ours(os.fsdecode(name), final, tmp):
            converted = StorageError.of(err)  # about another file (an input, another output): name that one
        else:
            converted = StorageError.of(err, path=final)  # write() errors name no file
        if converted is None:
            raise
        raise converted from err


def _new_temp(final: Path, directory: bool) -> tuple[int | None, str]:
    """Create a temporary for ``final`` (a directory, else an open file: its fd), first removing stale ones."""
    with _converted(final):
        final.parent.mkdir(parents=True, exist_ok=True)
        for path in _stale_temps(final.parent, final.name):
            _discard(path)
        with _lock:  # registered before another thread of this process can list it
            if directory:
                fd, tmp = None, tempfile.mkdtemp(prefix=_prefix(final), dir=final.parent)
            else:
                fd, tmp = tempfile.mkstemp(prefix=_prefix(final), dir=final.parent)
            _live[os.path.basename(tmp)] = os.path.abspath(tmp)
    return fd, tmp


def _release(tmp: str) -> None:
    with _lock:  # only once it is renamed or removed: it never looks stale while it exists
        _live.pop(os.path.basename(tmp), None)


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``final`` only if the block succeeds."""
    final = Path(final)
    _, name = _new_temp(final, directory=True)
    tmp = Path(name)
    try:
        with _converted(final, tmp):
            try:
                yield tmp
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            try:
                _remove(final)
                os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    finally:
        _release(name)


@contextlib.contextmanager
def atomic_file(final: str | Path, mode: str = "w") -> Iterator[Any]:
    """Open a temporary file for writing that replaces ``final`` when closed without error."""
    final = Path(final)
    fd, tmp = _new_temp(final, directory=False)
    try:
        with _converted(final, Path(tmp)):
            try:
                with os.fdopen(fd, mode) as f:
                    yield f
                os.replace(tmp, final)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
    finally:
        _release(tmp)


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write pretty, key-sorted JSON (stable diffs, stable DVC hashes)."""
    with atomic_file(path) as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=_json_default)
        f.write("\n")


def read_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
