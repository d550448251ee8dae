"""ESC-50: the Dataset for Environmental Sound Classification.

Source: Piczak (2015), "ESC: Dataset for Environmental Sound Classification", Proc. ACM
Multimedia 2015, 1015–1018; https://github.com/karolpiczak/ESC-50 (clips from freesound.org).
Licence: CC BY-NC 3.0 (the clips keep their freesound attributions).

Layout::

    <root>/audio/{FOLD}-{CLIP_ID}-{TAKE}-{TARGET}.wav   5 s, 44.1 kHz mono, 2,000 clips
    <root>/meta/esc50.csv                               filename,fold,target,category,esc10,src_file,take

Tasks: ``category`` (50 classes) and ``esc10`` (the 10-class ESC-10 subset: rows with
``esc10 == True``; the other rows are unlabelled for it, null, and the probe skips them). The class
names come from the CSV, ordered by ``target`` — on the full release that is the 50 official
classes; on a partial copy only the classes present (so the class list depends on the data, which
is fine for a single-corpus benchmark but means scores of partial copies are not comparable).

Protocol: ``official`` (the only one) = the 5 predefined folds, ``fold`` = CSV fold − 1, every row
``split = train``; the probe tests each fold once.
ESC-50 has no speakers: ``speaker`` is the clip's ``src_file`` (the freesound recording it was cut
from), so all takes of one source recording stay in one fold. The official folds are built that
way; ``validate`` checks it rather than trusting it.

Checks, each an error naming ``meta/esc50.csv`` and the line: a filename that does not follow
the pattern or disagrees with its fold/target/take columns, a fold outside 1–5, an ``esc10`` value
other than True/False, a target mapped to two categories, a duplicated filename, a path escaping
the root. Missing audio files are reported by the segment stage.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import pandas as pd

from pipeline.core.errors import ManifestError
from pipeline.core.manifest import Corpus, Task, display_path, validate
from pipeline.corpora.base import CorpusSettings, register_corpus
from pipeline.corpora.common import corpus_root, media, read_table

COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
FILENAME = re.compile(r"(?P<fold>\d+)-(?P<clip>[^-]+)-(?P<take>[A-Za-z]+)-(?P<target>\d+)\.wav")
PATTERN_TEXT = "{FOLD}-{CLIP_ID}-{TAKE}-{TARGET}.wav"
N_FOLDS = 5


def _check_row(row: pd.Series, where: str) -> None:
    """One CSV row: filename pattern, fold range, filename ↔ columns agreement, esc10 flag."""
    name = row["filename"]
    m = FILENAME.fullmatch(name)
    if m is None:
        raise ManifestError(f"{where}: filename {name!r} does not follow {PATTERN_TEXT}")
    if row["fold"] not in {str(k) for k in range(1, N_FOLDS + 1)}:
        raise ManifestError(f"{where}: fold {row['fold']!r} is not one of 1..{N_FOLDS}")
    for field in ("fold", "take", "target"):
        if m[field] != row[field]:
            raise ManifestError(
                f"{where}: filename {name!r} disagrees with its {field} column ({row[field]!r})"
            )
    if row["esc10"].lower() not in ("true", "false"):
        raise ManifestError(f"{where}: esc10 value {row['esc10']!r} is not True/False")
    if not row["category"] or not row["src_file"]:
        raise ManifestError(f"{where}: empty category or src_file")


class _Seen:
    """What earlier rows established: filenames (unique) and the target ↔ category bijection."""

    def __init__(self) -> None:
        self.line_of: dict[str, int] = {}
        self.category_of: dict[str, str] = {}
        self.target_of: dict[str, str] = {}

    def add(self, row: pd.Series, line: int, where: str) -> None:
        name, target, category = row["filename"], row["target"], row["category"]
        if name in self.line_of:
            raise ManifestError(f"{where}: duplicate filename {name!r} (first at line {self.line_of[name]})")
        self.line_of[name] = line
        known = (self.category_of.setdefault(target, category), self.target_of.setdefault(category, target))
        if known != (category, target):
            raise ManifestError(
                f"{where}: target {target} / category {category!r} disagrees with earlier rows "
                f"(target {target} = {known[0]!r}, {category!r} = target {known[1]})"
            )

    def classes(self) -> list[str]:
        """Category names ordered by target (the official class order)."""
        return [self.category_of[t] for t in sorted(self.category_of, key=int)]


class Esc50Settings(CorpusSettings):
    protocol: Literal["official"] = "official"


@register_corpus(
    "esc50", settings=Esc50Settings, tasks="category (50), esc10", protocol="official 5 folds",
    unit="source recording",
)
def prepare_esc50(s: Esc50Settings, out_dir: Path) -> Corpus:
    """Read ``meta/esc50.csv`` into a 5-fold manifest with ``category`` and ``esc10`` tasks."""
    root = corpus_root(s.root, "esc50")
    protocol = s.protocol
    csv_path = root / "meta" / "esc50.csv"
    meta = read_table(csv_path, COLUMNS)
    csv = display_path(csv_path)

    seen, audio = _Seen(), []
    for i, row in meta.iterrows():
        line = i + 2  # line 1 is the header
        where = f"{csv}:{line}"
        _check_row(row, where)
        seen.add(row, line, where)
        audio.append(media(root, f"audio/{row['filename']}", where))

    classes = seen.classes()
    is_esc10 = meta["esc10"].str.lower() == "true"
    mixed = sorted(set(meta.loc[is_esc10, "category"]) & set(meta.loc[~is_esc10, "category"]))
    if mixed:
        raise ManifestError(f"{csv}: categories {mixed} are marked both in and out of ESC-10")
    esc10_classes = [c for c in classes if c in set(meta.loc[is_esc10, "category"])]

    df = pd.DataFrame(
        {
            "id": meta["filename"].str.removesuffix(".wav"),
            "speaker": meta["src_file"],
            "split": "train",
            "fold": meta["fold"].astype(int) - 1,
            "audio": audio,
            "video": "",
            "text": "",
            "category": meta["category"],
            "esc10": meta["category"].where(is_esc10, None),
            "take": meta["take"],
        }
    )
    tasks = [Task("category", "classification", classes)]
    if esc10_classes:
        tasks.append(Task("esc10", "classification", esc10_classes))
    info = {
        "protocol": protocol,
        "folds": int(df["fold"].nunique()),
        "rows_per_fold": df["fold"].value_counts().sort_index().tolist(),
        "classes": len(classes),
        "esc10_rows": int(is_esc10.sum()),
        "speaker": "src_file (the freesound recording a clip was cut from): takes of one source share a fold",
    }
    corpus = Corpus("esc50", df, tasks, display_path(root), info)
    validate(corpus, csv)
    return corpus
