"""Cross-corpus experiments: train on corpus A, test on every item of corpus B through a label map.

A label map (``run.label_maps.<name>`` in params.yaml) declares shared classes and, per corpus, the
task it reads and which of that task's labels become which shared class (several labels may merge
into one). Items whose label the map does not list are dropped and counted per corpus and label in
the experiment JSON (``cross_corpus.dropped``) and the stage's output, never silently; a listed
label that is not a class of the corpus's task is an error naming it.

:func:`cross_corpus` joins the two prepared corpora into one manifest for the experiment runner:
ids, speakers and groups are prefixed with their corpus (``emodb/03a01Fa``: two corpora may share
names), the task is named after the label map and holds the shared labels, and a ``cross_role``
column says which rows are A's (``train``: A's own protocol gives train and dev, see
:func:`pipeline.experiment.protocol.plan_cross_folds`) and which are B's (``test``: all of them).

The shipped ``emobox4`` map is the four-class setting of EmoBox's cross-corpus track (neutral,
happy, sad, angry; emo-box/EmoBox, ``data/track2/*_selected_balenced.jsonl``, MIT): per corpus,

=========  ========  ==========================================================  ======================
corpus     task      neutral / happy / sad / angry                               dropped
=========  ========  ==========================================================  ======================
demo       emotion   neutral / happy / sad / angry                               –
iemocap    emotion4  neu / hap (``exc`` merged by the recipe, as EmoBox's        –
                     ``label_map.json``) / sad / ang
emodb      emotion   neutral / happiness / sadness / anger                       boredom, disgust, fear
ravdess    emotion   neutral / happy / sad / angry                               calm, fearful, disgust,
                                                                                 surprised
cremad     emotion   neutral / happy / sad / anger                               disgust, fear
meld       emotion   neutral / joy / sadness / anger                             surprise, disgust, fear
mer2023    emotion   neutral / happy / sad / angry                               worried, surprise
ecf        emotion   neutral / joy / sadness / anger                             surprise, fear, disgust
=========  ========  ==========================================================  ======================

EmoBox's track scores fixed class-balanced subsets of its test corpora; here B's test set is every
mapped item of B (UAR is insensitive to the imbalance, WAR is not).
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.config import LabelMap, cross_key
from pipeline.core.errors import ConfigError
from pipeline.core.manifest import Corpus, Task
from pipeline.experiment.protocol import CROSS_ROLE

ROLE = CROSS_ROLE  # manifest column: "train" (corpus A's rows) or "test" (corpus B's rows)


@dataclass
class Mapped:
    """One corpus's rows after the label map: the kept rows (shared labels) and what was dropped."""

    corpus: str
    task: Task
    rows: pd.DataFrame
    dropped: dict[str, int] = field(default_factory=dict)  # corpus label -> items dropped (not in the map)
    unlabelled: int = 0  # rows without a label for the task (multi-task corpora)


def qualify(corpus: str, values: pd.Series) -> pd.Series:
    """``<corpus>/<value>``: ids, speakers and groups stay distinct when two corpora use the same names."""
    return corpus + "/" + values.astype(str)


def map_labels(corpus: Corpus, name: str, lmap: LabelMap) -> Mapped:
    """Apply ``run.label_maps.<name>`` to ``corpus``: keep the items whose label it lists, count the others.

    Raises :class:`ConfigError` naming the key when the map names a task the corpus lacks, a task
    that is not classification, or a label that is not one of the task's classes.
    """
    where = f"params.yaml: run.label_maps.{name}.corpora.{corpus.name}"
    side = lmap.corpora.get(corpus.name)
    if side is None:
        raise ConfigError(f"params.yaml: run.label_maps.{name}.corpora has no entry for {corpus.name!r}")
    names = [t.name for t in corpus.tasks]
    if side.task not in names:
        close = difflib.get_close_matches(side.task, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where}.task = {side.task!r}: {corpus.name} has no such task{hint}; its tasks: {', '.join(names)}")
    task = corpus.task(side.task)
    if task.type != "classification":
        raise ConfigError(f"{where}.task = {side.task!r}: a {task.type} task; label maps map classes")
    for label in side.labels:
        if label not in task.classes:
            close = difflib.get_close_matches(label, task.classes, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}.labels: {label!r} is not a class of {corpus.name}'s task "
                              f"{task.name!r}{hint}; its classes: {', '.join(task.classes)}")
    df = corpus.manifest
    labels = df[task.name]
    has = (labels.notna() & (labels.astype(str) != "")).to_numpy()
    mapped = labels.map(side.labels)
    keep = has & mapped.notna().to_numpy()
    dropped = Counter(labels[has & ~keep].astype(str))
    rows = df[keep].copy()
    rows[name] = mapped[keep].to_numpy()
    return Mapped(corpus.name, task, rows, dict(sorted(dropped.items())), int((~has).sum()))


def _shared_task(name: str, lmap: LabelMap, a: Mapped, b: Mapped) -> Task:
    """The cross-corpus task: the shared classes; scored per speaker only if both tasks are; a positive
    class only where both corpora's positives map onto the same shared class."""
    if a.task.unit != b.task.unit:
        raise ConfigError(f"params.yaml: run.label_maps.{name}: {a.corpus}'s task {a.task.name!r} is labelled per "
                          f"{a.task.unit}, {b.corpus}'s {b.task.name!r} per {b.task.unit}: they cannot be scored alike")
    positives = {lmap.corpora[m.corpus].labels.get(m.task.positive) for m in (a, b)}
    positive = positives.pop() if len(positives) == 1 else None
    return Task(name, "classification", list(lmap.classes), positive=positive, unit=a.task.unit)


def _joined(m: Mapped, role: str, label: str) -> pd.DataFrame:
    rows = m.rows
    out = pd.DataFrame({
        "id": qualify(m.corpus, rows["id"]).to_numpy(),
        "speaker": qualify(m.corpus, rows["speaker"]).to_numpy(),
        "group": qualify(m.corpus, rows["group"] if "group" in rows else rows["speaker"]).to_numpy(),
        "split": rows["split"].to_numpy() if role == "train" else "test",
        "corpus": m.corpus,
        ROLE: role,
    })
    if role == "train" and "fold" in rows:
        out["fold"] = rows["fold"].to_numpy()
    for col in ("audio", "video", "text"):
        out[col] = rows[col].to_numpy()
    out[label] = rows[label].to_numpy()
    return out


def cross_corpus(train: Corpus, test: Corpus, name: str, lmap: LabelMap) -> tuple[Corpus, dict[str, Any]]:
    """One manifest for the runner (A's rows with their protocol, then every mapped row of B) and the
    record of what the map did (the experiment JSON's ``cross_corpus`` entry).

    Raises :class:`ConfigError` when the map does not fit a corpus (see :func:`map_labels`) or leaves
    one of them without items, or a shared class without training items in A.
    """
    a, b = map_labels(train, name, lmap), map_labels(test, name, lmap)
    for m in (a, b):
        if m.rows.empty:
            raise ConfigError(f"params.yaml: run.label_maps.{name}.corpora.{m.corpus}: no item of {m.corpus} has a "
                              f"label the map lists (its labels: {', '.join(m.dropped) or 'none'})")
    counts = {m.corpus: {c: int((m.rows[name] == c).sum()) for c in lmap.classes} for m in (a, b)}
    untrained = [c for c, n in counts[a.corpus].items() if n == 0]
    if untrained:
        raise ConfigError(f"params.yaml: run.label_maps.{name}: class(es) {untrained} have no items in "
                          f"{a.corpus} (the training corpus) after the map: a probe cannot learn them")
    task = _shared_task(name, lmap, a, b)
    rows = pd.concat([_joined(a, "train", name), _joined(b, "test", name)], ignore_index=True)
    key = cross_key(train.name, test.name)
    info = {
        "train_corpus": train.name, "test_corpus": test.name, "label_map": name,
        "classes": list(lmap.classes),
        "tasks": {a.corpus: a.task.name, b.corpus: b.task.name},
        "mapping": {m.corpus: dict(lmap.corpora[m.corpus].labels) for m in (a, b)},
        "kept": {m.corpus: len(m.rows) for m in (a, b)},
        "per_class": counts,
        "dropped": {m.corpus: m.dropped for m in (a, b)},
        "unlabelled": {m.corpus: m.unlabelled for m in (a, b)},
        "protocols": {c.name: c.info.get("protocol", "") for c in (train, test)},
    }
    corpus = Corpus(key, rows, [task], root="", info={"protocol": f"cross-corpus {train.name} -> {test.name}"})
    return corpus, info


def dropped_line(info: dict[str, Any]) -> str:
    """What the label map dropped, per corpus (what the stage prints)."""
    parts = []
    for corpus, dropped in info["dropped"].items():
        n = sum(dropped.values())
        detail = ", ".join(f"{label} {k}" for label, k in dropped.items())
        parts.append(f"{corpus}: kept {info['kept'][corpus]}, dropped {n}" + (f" ({detail})" if n else ""))
    return f"label map {info['label_map']}: " + "; ".join(parts)


def store_rows(ids: np.ndarray, corpus: str) -> np.ndarray:
    """A store's ids as the cross-corpus manifest names them."""
    return qualify(corpus, pd.Series(ids)).to_numpy()
