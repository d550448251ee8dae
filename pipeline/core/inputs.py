"""A corpus's inputs on disk: the files DVC watches, and the per-item table the model stages read.

Media and label files live under ``corpora.<name>.root``, outside the repository, where DVC cannot
cache them. Two things make them inputs all the same:

- **Watching** (:func:`link_inputs`, stage ``inputs@<corpus>``): ``data/<corpus>/inputs`` is a
  symlink to the corpus root, committed to git (a ``cache: false`` output of ``inputs@<corpus>``).
  DVC follows it: it hashes every file under the root once and afterwards re-reads only files
  whose stat (size, mtime, inode) changed, from its own state database — an edited, replaced,
  added or removed media or label file shows in ``dvc status`` as ``inputs@<corpus>``'s output
  changed, and ``dvc repro`` reruns that stage. It writes ``data/<corpus>/inputs.json``
  (:func:`list_inputs`: one content digest over every file under the root), which is what
  ``prepare`` depends on — so the corpus is walked once per ``dvc status``, as an output, not a
  second time as ``prepare``'s dependency (at 100k files each walk is ~3 s of DVC's time), and
  ``prepare`` reruns exactly when some file's content changed. (The whole root is watched: files
  no recipe reads only cost their first hash.)
- **Per item** (:func:`write_items`, ``prepared/items.parquet``): what the model stages see — id,
  media paths, start/end window, text — plus the content digest of each media file
  (:mod:`pipeline.core.fingerprint`, stat-cached). ``segment`` reads only this table: a label
  edit does not rerun it, and an edited file changes exactly the digests of the items cut from it,
  which is what the segment cache re-decodes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pandas as pd

from pipeline.core.errors import ManifestError
from pipeline.core.fingerprint import digests
from pipeline.core.io import atomic_file, temp_sibling
from pipeline.core.manifest import Corpus

ITEM_COLUMNS = ("id", "audio", "video", "start", "end", "text")
SYNTHESISED = "SYNTHESISED.txt"


def link_inputs(name: str, root: str | None, out: str | Path) -> str | None:
    """Make ``out`` a symlink to the corpus root (the path DVC watches); returns the root.

    DVC follows a dependency that is itself a symlink, and symlinked files inside it, but not
    symlinked folders further down — so the whole root is linked, not a folder of links to its
    parts. A corpus without a root (the recipe synthesises it, so its media are ``prepare``'s own
    outputs) gets a folder holding a marker file instead. Replaced atomically.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(out)  # (a killed run's leftover is removed by the next one)
    if not root:
        tmp.mkdir()
        (tmp / SYNTHESISED).write_text(f"{name}: synthesised by its recipe; its media are prepare's outputs\n")
        target = None
    else:
        base = Path(os.path.abspath(os.path.expanduser(root)))
        if not base.is_dir():
            raise ManifestError(f"{base}: corpus root for {name} does not exist")
        tmp.symlink_to(base, target_is_directory=True)
        target = str(base)
    if out.is_symlink() and not target:
        out.unlink()  # (a link becomes a folder: rename cannot replace one by the other)
    elif out.is_dir() and not out.is_symlink():
        shutil.rmtree(out)  # (the marker folder: never a link, so nothing of the corpus is touched)
    os.replace(tmp, out)
    return target


def list_inputs(name: str, root: str | None) -> dict:
    """What ``prepare`` depends on: one digest of the content of every file DVC watches under ``root``.

    Files are found the way DVC walks the link (symlinked files are followed, symlinked folders
    further down are not) and read only when their stat changed (:func:`digests`, the same state
    database ``prepare``'s per-item digests use, so a media file is read once for both). The
    digest covers each file's path under the root and its content, so it changes exactly when a
    file is added, removed, renamed or edited — not when one is only touched or copied elsewhere.
    """
    if not root:
        return {"corpus": name, "root": None, "synthesised": True}
    files: list[tuple[str, str]] = []  # (path under the root, path)
    for here, dirs, names in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(here, root)  # (once per folder: relpath per file was 0.4 s of 100k)
        prefix = "" if rel == "." else rel + os.sep
        files.extend((prefix + n, os.path.join(here, n)) for n in sorted(names))
    known = digests(path for _, path in files)
    h = hashlib.blake2b(digest_size=16)
    for rel, path in files:
        h.update(f"{rel}\0{known[path]}\n".encode())
    return {"corpus": name, "root": str(root), "files": len(files), "digest": h.hexdigest()}


def write_items(corpus: Corpus, out_dir: str | Path) -> pd.DataFrame:
    """Write ``items.parquet``: the manifest's model-input columns plus each media file's digest."""
    df = corpus.manifest
    items = pd.DataFrame({c: df[c] for c in ITEM_COLUMNS if c in df.columns})
    audio = [str(p) for p in items["audio"]]
    video = [str(p) if p else "" for p in items["video"]]
    known = digests(audio + [v for v in video if v])
    items["audio_digest"] = [known[p] for p in audio]
    items["video_digest"] = [known[v] if v else "" for v in video]
    with atomic_file(Path(out_dir) / "items.parquet", "wb") as f:
        items.to_parquet(f, index=False)
    return items


def load_items(name: str, prepared_dir: str | Path) -> Corpus:
    """The prepared items of corpus ``name`` as a :class:`Corpus` without labels or tasks (what the
    model stages need: ids, media, windows, text, digests)."""
    path = Path(prepared_dir) / "items.parquet"
    if not path.exists():
        raise ManifestError(f"{path}: not found; run the prepare stage first")
    df = pd.read_parquet(path)
    for col in ("video", "text", "video_digest"):
        if col in df.columns:
            df[col] = df[col].fillna("")
    return Corpus(name=name, manifest=df, tasks=[], root=str(prepared_dir))
