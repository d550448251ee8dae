"""EmoBox's published partitions (``protocol: emobox``): read them and put a manifest on them.

EmoBox (Ma et al., "EmoBox: Multilingual Multi-corpus Speech Emotion Recognition Toolkit and
Benchmark", Interspeech 2024; https://github.com/emo-box/EmoBox, MIT) publishes, per corpus,
``data/<corpus>/fold_<k>/<corpus>_{train,test}_fold_<k>.jsonl`` (plus ``_valid_`` where the corpus has
an official dev set), one JSON object per utterance (``key`` = ``<corpus>-<utterance>``, ``emo``, ...),
and a ``label_map.json`` that merges labels (IEMOCAP: ``exc`` → Happy). The lists for IEMOCAP, EmoDB,
RAVDESS, CREMA-D and MELD are committed in ``pipeline/corpora/emobox/`` in a compact form
(``<corpus>.tsv.gz``: ``key, emo, part`` per utterance, where ``part`` is the fold whose test set holds
it, or ``train``/``valid``/``test`` for single-fold corpora) with their provenance
(``provenance.json``: repository, commit, source paths and SHA-256 of every file read). That folder's
README says how they were converted; ``python -m pipeline.corpora._emobox <EmoBox checkout> --commit
<sha>`` converts them again.

:func:`apply_emobox` turns a recipe's full manifest into EmoBox's protocol: exactly EmoBox's items,
EmoBox's test set per fold (``fold`` = EmoBox's fold number) or its train/valid/test split, the
label EmoBox gives each item checked against the recipe's own. Items of the corpus EmoBox does not
list are dropped and named in ``info``; items EmoBox lists that are not on disk are an error naming
the count and the first few (``emobox_missing: skip`` drops and lists them instead). A corpus
setting ``emobox_data`` reads an EmoBox ``data/`` folder (its own layout) instead of the committed
lists. Dev: EmoBox's loaders mean to draw a random 20 % of each training file as validation (their
``split_sets`` leaves it empty); here dev is carved as :mod:`pipeline.experiment.protocol` does for
every protocol, from training data only (the next fold, or held-out training speakers when there
is a single fold without EmoBox valid file), and ``info`` says so.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from pipeline.core.errors import ManifestError
from pipeline.corpora.base import CorpusSettings

DATA = Path(__file__).with_name("emobox")
PROVENANCE = DATA / "provenance.json"
REPO = "emo-box/EmoBox"
SPLITS = {"train": "train", "valid": "dev", "test": "test"}  # EmoBox's file part -> manifest split
SHOWN = 5  # ids named in an error message


def _same(key: str) -> str:
    return key


def _cremad_id(key: str) -> str:
    return key.replace("-", "_")  # EmoBox: 1001-DFA-ANG-XX; the release: 1001_DFA_ANG_XX.wav


def _meld_id(key: str) -> str:
    utt, split = key.rsplit("-", 1)  # dia0_utt0-train
    return f"{split}_{utt}"


@dataclass(frozen=True)
class Spec:
    """How one corpus's EmoBox lists meet its recipe."""

    task: str  # the recipe's task EmoBox evaluates
    labels: dict[str, str]  # EmoBox's raw ``emo`` -> the recipe's class (EmoBox's label_map applied)
    key_to_id: Callable[[str], str]  # EmoBox key (without "<corpus>-") -> manifest id
    speaker_independent: bool  # whether EmoBox's partition keeps every speaker on one side
    note: str = ""
    known_unlisted: frozenset[str] = frozenset()  # corpus items EmoBox leaves out on purpose


SPECS: dict[str, Spec] = {
    "iemocap": Spec(
        "emotion4", {"neu": "neu", "hap": "hap", "exc": "hap", "ang": "ang", "sad": "sad"}, _same, True,
        "the 5,531 utterances of the 4-class set (exc merged into hap); folds = sessions",
    ),
    "emodb": Spec(
        "emotion",
        {"anger": "anger", "boredem": "boredom", "disgust": "disgust", "fear": "fear", "happy": "happiness",
         "neutral": "neutral", "sad": "sadness"},
        _same, False,
        "EmoBox's EmoDB folds (from the Kaggle copy's cv_k_fold lists) are not speaker-independent: every "
        "speaker is in every test fold",
    ),
    "ravdess": Spec(
        "emotion",
        {"Neutral": "neutral", "Calm": "calm", "Happy": "happy", "Sad": "sad", "Angry": "angry",
         "Fearful": "fearful", "Disgust": "disgust", "Surprised": "surprised"},
        _same, True, "speech, audio-only clips (1,440); 6 folds of 4 actors",
    ),
    "cremad": Spec(
        "emotion",
        {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"},
        _cremad_id, False,
        "one train/test split without dev; it is not actor-independent: all 91 actors are on both sides",
    ),
    "meld": Spec(
        "emotion",
        {e: e for e in ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")},
        _meld_id, False,
        "the official train/dev/test split, less the two utterances without a clip (train dia125_utt3, "
        "dev dia110_utt7); speakers recur across splits, dialogues do not",
        frozenset({"train_dia125_utt3", "dev_dia110_utt7"}),
    ),
}


class EmoboxOptions(CorpusSettings):
    """Options of the recipes that offer ``protocol: emobox``."""

    emobox_missing: Literal["error", "skip"] = "error"  # EmoBox items not on disk: error, or drop and list
    emobox_data: str | None = None  # an EmoBox data/ folder to read instead of the committed lists

    def files_outside_root(self) -> list[str]:
        return [*super().files_outside_root(), *([self.emobox_data] if self.emobox_data else [])]


# --- reading ------------------------------------------------------------------------------------


def _jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ManifestError(f"{path}: line {number}: not JSON ({err.msg})") from err
            missing = [k for k in ("key", "emo") if k not in row]
            if missing:
                raise ManifestError(f"{path}: line {number}: no {missing} field")
            rows.append(row)
    return rows


def _fold_files(folder: Path, corpus: str) -> dict[int, dict[str, Path]]:
    """fold number -> {train/valid/test: file} in an EmoBox ``data/<corpus>/`` folder."""
    folds: dict[int, dict[str, Path]] = {}
    for sub in sorted(folder.glob("fold_*")):
        m = re.fullmatch(r"fold_(\d+)", sub.name)
        if not (m and sub.is_dir()):
            continue
        k = int(m.group(1))
        files = {part: sub / f"{corpus}_{part}_fold_{k}.jsonl" for part in SPLITS}
        folds[k] = {part: p for part, p in files.items() if p.is_file()}
        for part in ("train", "test"):
            if part not in folds[k]:
                raise ManifestError(f"{files[part]}: EmoBox fold file not found")
    if not folds:
        raise ManifestError(f"{folder}: no EmoBox fold_<k>/ folders (expected data/{corpus}/fold_1/...)")
    return folds


def read_emobox_dir(data_dir: Path, corpus: str) -> tuple[pd.DataFrame, list[Path]]:
    """EmoBox's partition of ``corpus`` from an EmoBox ``data/`` folder: (``key, emo, part``, files read).

    With several folds every utterance must be in exactly one test file and each fold's train file
    must be the rest (a cross-validation partition); ``part`` is then the fold number. With one fold,
    ``part`` is the file (``train``/``valid``/``test``). Anything else is an error naming the files.
    """
    folder = Path(data_dir) / corpus
    if not folder.is_dir():
        raise ManifestError(f"{folder}: no EmoBox folder for {corpus} (corpora.{corpus}.emobox_data)")
    folds = _fold_files(folder, corpus)
    read = [p for k in sorted(folds) for p in folds[k].values()]
    prefix = f"{corpus}-"
    rows: dict[str, tuple[str, str, Path]] = {}  # key -> (emo, part, file)

    def add(path: Path, part: str) -> None:
        for r in _jsonl(path):
            key = str(r["key"])
            if not key.startswith(prefix):
                raise ManifestError(f"{path}: key {key!r} does not start with {prefix!r}")
            key = key[len(prefix):]
            if key in rows:
                raise ManifestError(f"{path}: {key!r} is also in {rows[key][2]} (EmoBox parts must not overlap)")
            rows[key] = (str(r["emo"]), part, path)

    if len(folds) == 1:
        (files,) = folds.values()
        for part, path in files.items():
            add(path, part)
    else:
        for k in sorted(folds):
            if "valid" in folds[k]:
                raise ManifestError(f"{folds[k]['valid']}: a valid file in a {len(folds)}-fold partition is not supported")
            add(folds[k]["test"], str(k))
        everything = set(rows)
        for k in sorted(folds):
            train = {str(r["key"])[len(prefix):] for r in _jsonl(folds[k]["train"])}
            test = {key for key, (_, part, _) in rows.items() if part == str(k)}
            extra, absent = sorted(train - everything), sorted(everything - test - train)
            if extra or absent or train & test:
                raise ManifestError(
                    f"{folds[k]['train']}: not the complement of {folds[k]['test'].name} "
                    f"({len(extra)} in no test file, e.g. {extra[:SHOWN]}; {len(absent)} left out, e.g. {absent[:SHOWN]}; "
                    f"{len(train & test)} in both)"
                )
    table = pd.DataFrame([(k, e, p) for k, (e, p, _) in rows.items()], columns=["key", "emo", "part"])
    return table, read


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def committed_lists(corpus: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The committed lists of ``corpus`` and their provenance; the file's digest is checked."""
    provenance = json.loads(PROVENANCE.read_text())
    entry = provenance["corpora"].get(corpus)
    if entry is None:
        raise ManifestError(f"{PROVENANCE}: no EmoBox lists for {corpus}")
    path = DATA / entry["file"]
    if sha256(path) != entry["sha256"]:
        raise ManifestError(f"{path}: content differs from the digest in {PROVENANCE.name}; restore it from git")
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    source = {k: provenance[k] for k in ("repo", "commit", "commit_date", "licence")}
    return table, {**source, **entry, "file": f"pipeline/corpora/emobox/{entry['file']}"}


def load_lists(corpus: str, emobox_data: str | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """EmoBox's partition of ``corpus`` (committed, or from ``emobox_data``) and where it came from."""
    if emobox_data is None:
        return committed_lists(corpus)
    table, read = read_emobox_dir(Path(emobox_data).expanduser(), corpus)
    base = Path(emobox_data).expanduser()
    files = {p.relative_to(base).as_posix(): sha256(p) for p in read}
    return table, {"repo": None, "data_dir": str(base), "files": files}


# --- applying -------------------------------------------------------------------------------------


def _named(ids: list[str]) -> str:
    more = f", … ({len(ids)} in all)" if len(ids) > SHOWN else ""
    return ", ".join(ids[:SHOWN]) + more


def apply_emobox(df: pd.DataFrame, corpus: str, settings: EmoboxOptions, source: str,
                 key_to_id: Callable[[str], str] | None = None) -> tuple[pd.DataFrame, dict]:
    """The rows of ``df`` (a recipe's whole manifest) that EmoBox lists, with EmoBox's partition.

    Sets ``fold`` (EmoBox's fold number, every row ``train``) for a cross-validation partition, or
    ``split`` (EmoBox's ``valid`` = dev) for a single-fold one, and keeps only the task EmoBox
    evaluates (the caller drops the others). Returns the rows and ``info["emobox"]``. ``source``
    (the corpus root) prefixes errors; ``key_to_id`` replaces the corpus's key -> id mapping (RAVDESS's
    audio-visual clips).
    """
    spec = SPECS[corpus]
    table, provenance = load_lists(corpus, settings.emobox_data)
    where = provenance.get("file") or settings.emobox_data
    unknown = sorted(set(table["emo"]) - set(spec.labels))
    if unknown:
        raise ManifestError(f"{where}: EmoBox label(s) {unknown} not in the {corpus} label map {sorted(spec.labels)}")
    table["id"] = table["key"].map(key_to_id or spec.key_to_id)
    table["label"] = table["emo"].map(spec.labels)

    by_id = df.set_index("id", drop=False)
    on_disk = df["id"][[bool(a) and os.path.exists(a) for a in df["audio"]]]
    missing = sorted(set(table["id"]) - set(on_disk))
    if missing and settings.emobox_missing == "error":
        raise ManifestError(
            f"{source}: protocol emobox: {len(missing)} of EmoBox's {len(table)} {corpus} items are not on disk "
            f"({_named(missing)}); corpora.{corpus}.emobox_missing: skip runs without them and lists them"
        )
    table = table[~table["id"].isin(missing)]
    if table.empty:
        raise ManifestError(f"{source}: protocol emobox: none of EmoBox's {corpus} items is in this corpus")

    ours = by_id.loc[table["id"], spec.task].to_numpy()
    wrong = table["label"].to_numpy() != ours
    if wrong.any():
        bad = table[wrong].head(SHOWN)
        pairs = [f"{i}: EmoBox {e!r} -> {lab!r}, corpus {o!r}" for i, e, lab, o in
                 zip(bad["id"], bad["emo"], bad["label"], ours[wrong][:SHOWN])]
        raise ManifestError(
            f"{where}: {int(wrong.sum())} EmoBox label(s) disagree with the corpus at {source} ({'; '.join(pairs)})"
        )

    listed = set(table["id"])
    dropped = df.loc[~df["id"].isin(listed)]
    unlabelled = dropped[spec.task].astype(str) == ""  # outside EmoBox's label set (e.g. IEMOCAP fru)
    known = dropped["id"].isin(spec.known_unlisted)
    not_listed = sorted(dropped.loc[~unlabelled & ~known, "id"])
    if not_listed:  # labelled items EmoBox does not use: a corpus copy that differs from EmoBox's
        print(f"warning: {source}: protocol emobox leaves out {len(not_listed)} {corpus} item(s) that EmoBox's "
              f"lists do not hold ({_named(not_listed)}); corpus.json info.emobox.not_listed lists them", flush=True)
    out = df[df["id"].isin(listed)].reset_index(drop=True)  # the recipe's order
    parts = out["id"].map(table.set_index("id")["part"]).to_numpy()
    cross_validation = not set(parts) <= set(SPLITS)
    info: dict[str, Any] = {"source": provenance, "task": spec.task, "note": spec.note,
                            "speaker_independent": spec.speaker_independent}
    if cross_validation:
        out["split"] = "train"
        out["fold"] = parts.astype(int)
        info["folds"] = int(out["fold"].nunique())
        info["rows_per_fold"] = {str(k): int(n) for k, n in out["fold"].value_counts().sort_index().items()}
        info["dev"] = "EmoBox has no dev file (its loaders mean a random 20 % of training); here " + (
            "dev = the next fold (in EmoBox's training file of the test fold), never test" if info["folds"] >= 3
            else "dev = a random 20 % of the training utterances (only 2 folds), never test")
    else:
        out["split"] = [SPLITS[p] for p in parts]
        out = out.drop(columns=[c for c in ("fold",) if c in out.columns])
        info["rows_per_split"] = {s: int((out["split"] == s).sum()) for s in ("train", "dev", "test")}
        info["dev"] = ("EmoBox's valid file" if (out["split"] == "dev").any() else
                       "EmoBox has no dev file (its loaders mean a random 20 % of training); dev is carved from "
                       "training data only, as for every official split without dev, never from test")
    info["labels"] = dict(sorted(spec.labels.items()))
    info["missing"] = missing  # empty unless emobox_missing: skip
    info["not_listed"] = {"count": len(not_listed), "ids": not_listed[:100],
                          "outside_label_set": int(unlabelled.sum()),
                          "left_out_by_emobox": sorted(dropped.loc[known, "id"])}
    return out, info


# --- converting EmoBox's files into the committed compact lists --------------------------------


def write_lists(emobox: Path, out: Path, commit: str, corpora: list[str], date: str = "") -> dict[str, Any]:
    """Convert ``<emobox>/data/<corpus>/`` into ``out/<corpus>.tsv.gz`` + ``out/provenance.json``."""
    emobox = Path(emobox)
    if not commit:
        commit = subprocess.run(["git", "-C", str(emobox), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    if not date:
        with_git = subprocess.run(["git", "-C", str(emobox), "log", "-1", "--format=%cI", commit],
                                  capture_output=True, text=True, check=False)
        date = with_git.stdout.strip() if with_git.returncode == 0 else ""
    out.mkdir(parents=True, exist_ok=True)
    provenance: dict[str, Any] = {"repo": REPO, "url": f"https://github.com/{REPO}", "commit": commit,
                                  "commit_date": date, "licence": "MIT (declared in EmoBox's README; see LICENSE)",
                                  "converter": "python -m pipeline.corpora._emobox", "corpora": {}}
    for corpus in corpora:
        table, read = read_emobox_dir(emobox / "data", corpus)
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0, filename="") as gz:
            gz.write(table.to_csv(sep="\t", index=False, lineterminator="\n").encode())
        name = f"{corpus}.tsv.gz"
        (out / name).write_bytes(buf.getvalue())
        label_map = emobox / "data" / corpus / "label_map.json"
        sources = [*read, *([label_map] if label_map.is_file() else [])]
        provenance["corpora"][corpus] = {
            "file": name,
            "sha256": sha256(out / name),
            "items": len(table),
            "parts": {p: int(n) for p, n in table["part"].value_counts().sort_index().items()},
            "label_map": json.loads(label_map.read_text()) if label_map.is_file() else None,
            "sources": {p.relative_to(emobox).as_posix(): sha256(p) for p in sources},
        }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=1, ensure_ascii=False) + "\n")
    return provenance


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Convert EmoBox's fold files into pipeline/corpora/emobox/.")
    parser.add_argument("emobox", type=Path, help="an EmoBox checkout (holding data/<corpus>/)")
    parser.add_argument("--commit", default="", help="the checkout's commit (default: git rev-parse HEAD)")
    parser.add_argument("--commit-date", default="", help="its commit date (default: from git)")
    parser.add_argument("--out", type=Path, default=DATA)
    parser.add_argument("--corpora", nargs="+", default=list(SPECS))
    args = parser.parse_args(argv)
    provenance = write_lists(args.emobox, args.out, args.commit, args.corpora, args.commit_date)
    for corpus, entry in provenance["corpora"].items():
        print(f"{corpus}: {entry['items']} items {entry['parts']} -> {args.out / entry['file']}")


if __name__ == "__main__":
    main()
