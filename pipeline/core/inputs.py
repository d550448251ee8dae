"""A corpus's inputs on disk: the files DVC watches, and the per-item table the model stages read.

Media and label files live under ``corpora.<name>.root``, outside the repository, where DVC cannot
cache them. Two things make them inputs all the same:

- **Watching** (:func:`link_inputs`, stage ``inputs@<corpus>``): ``data/<corpus>/inputs`` is a
  symlink to the corpus root, committed to git (a ``cache: false`` output). ``prepare`` depends on
  it, and DVC follows it: it hashes every file under the root once and afterwards re-reads only
  files whose stat (size, mtime, inode) changed, from its own state database — an edited,
  replaced, added or removed media or label file shows in ``dvc status`` and reruns ``prepare``.
  (The whole root is watched: files no recipe reads only cost their first hash.)
- **Per item** (:func:`write_items`, ``prepared/items.parquet``): what the model stages see — id,
  media paths, start/end window, text — plus the content digest of each media file
  (:mod:`pipeline.core.fingerprint`, stat-cached). ``segment`` reads only this table: a label
  edit does not rerun it, and an edited file changes exactly the digests of the items cut from it,
  which is what the segment cache re-decodes.
"""

from __future__ import annotations

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
