"""Protocols: the train/dev/test masks of every fold, from what the manifest encodes.

An official train/dev/test split is one fold. A ``fold`` column means cross-validation: each fold
is the test set once and dev is the next fold (with only two folds, a stratified 20 % of the
training utterances, since no held-out group is left). An official split without dev carves one:
whole held-out training groups (speakers, sessions, conversations) when there are at least three,
else a stratified 20 % of the training utterances. When stratifying is impossible (a class with a
single training utterance, or fewer dev or remaining training utterances than classes) the 20 % is
drawn unstratified. Every fold says how its dev was made (``dev_note``), fallbacks included. Model
selection only ever sees train and dev.

Cross-corpus rows (a ``cross_role`` column, see :mod:`pipeline.experiment.cross`) make one fold,
``cross``: train and dev come from corpus A's rows alone, by A's own protocol — its official train and
dev (A's test rows are not used), dev carved from A's training groups as above when A has none, and
for a cross-validated A every fold is training data with dev carved from held-out groups — and the
test set is every row of corpus B (:func:`plan_cross_folds`).

Protocols that cannot be run at all (one fold, no training rows, one training utterance to carve
a dev set from) are rejected at prepare time by :func:`pipeline.core.manifest.check_protocol`;
:func:`plan_folds` applies the same rules and raises a :class:`HeadError` should it meet one anyway
(e.g. when only some items have features).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from pipeline.core.errors import HeadError
from pipeline.core.manifest import protocol_problem

DEV_FRACTION = 0.2
CROSS_ROLE = "cross_role"  # manifest column of cross-corpus rows: "train" (corpus A) or "test" (corpus B)


@dataclass
class Fold:
    name: str
    train: np.ndarray  # boolean masks over the task's rows
    dev: np.ndarray
    test: np.ndarray
    dev_note: str = ""

    def restrict(self, keep: np.ndarray) -> Fold:
        """The same fold over the rows selected by boolean mask ``keep``."""
        return Fold(self.name, self.train[keep], self.dev[keep], self.test[keep], self.dev_note)


def _random_dev(train: np.ndarray, y: np.ndarray, seed: int, regression: bool) -> tuple[np.ndarray, str]:
    """A random 20 % of the ``train`` rows as dev, stratified by class where that is possible.

    Returns the dev mask and, when a classification task could not be stratified, why (for the
    fold's ``dev_note``); "" otherwise.
    """
    idx = np.flatnonzero(train)
    if len(idx) < 2:  # check_protocol rejects this at prepare time; features may still thin the rows
        raise HeadError(f"cannot carve a dev set from {len(idx)} training utterance(s); at least 2 are needed")
    strat, why = None, ""
    if not regression:
        counts = pd.Series(y[idx]).value_counts()
        n_dev = math.ceil(DEV_FRACTION * len(idx))  # what train_test_split takes
        if counts.min() < 2:
            why = f"class {counts.idxmin()!r} has {counts.min()} training utterance"
        elif min(n_dev, len(idx) - n_dev) < len(counts):
            why = f"{n_dev} dev / {len(idx) - n_dev} training utterances cannot cover all {len(counts)} classes"
        else:
            strat = y[idx]
    _, dev_idx = train_test_split(idx, test_size=DEV_FRACTION, random_state=seed, stratify=strat)
    dev = np.zeros_like(train)
    dev[dev_idx] = True
    return dev, why


def _random_note(note: str, why: str) -> str:
    return f"{note}; unstratified: {why}" if why else note


def plan_folds(rows: pd.DataFrame, y: np.ndarray, seed: int = 0, regression: bool = False) -> list[Fold]:
    """Train/dev/test masks for every fold of the protocol the manifest encodes.

    Raises :class:`HeadError` for a protocol that cannot be run on ``rows`` (see
    :func:`pipeline.core.manifest.protocol_problem`); an official split without test rows is
    accepted (its test mask is empty).
    """
    if CROSS_ROLE in rows:
        return plan_cross_folds(rows, y, seed, regression)
    problem = protocol_problem(rows, need_test=False)
    if problem:
        raise HeadError(f"protocol {problem}")
    group = rows["group"].to_numpy() if "group" in rows else rows["speaker"].to_numpy()
    if "fold" in rows and rows["fold"].notna().any():
        fold = rows["fold"].to_numpy()
        ids = sorted(pd.unique(fold[pd.notna(fold)]))
        folds = []
        for i, k in enumerate(ids):
            test = fold == k
            if len(ids) >= 3:
                dev = fold == ids[(i + 1) % len(ids)]
                folds.append(Fold(f"fold{k}", ~test & ~dev, dev, test, f"dev = fold {ids[(i + 1) % len(ids)]}"))
            else:
                dev, why = _random_dev(~test, y, seed, regression)
                note = "dev = random 20% of training utterances (only 2 folds: no held-out group left)"
                folds.append(Fold(f"fold{k}", ~test & ~dev, dev, test, _random_note(note, why)))
        return folds
    split = rows["split"].to_numpy()
    train, dev, test = split == "train", split == "dev", split == "test"
    note = "official dev"
    if not dev.any():
        train_groups = pd.unique(group[train])
        if len(train_groups) >= 3:
            held = np.random.default_rng(seed).permutation(train_groups)[: max(1, len(train_groups) // 5)]
            dev = train & np.isin(group, held)
            note = f"dev = {len(held)} held-out training group(s)"
        else:
            dev, why = _random_dev(train, y, seed, regression)
            note = _random_note("dev = random 20% of training utterances", why)
        train = train & ~dev
    if not train.any():
        raise HeadError("no training utterances")
    return [Fold("official", train, dev, test, note)]


def plan_cross_folds(rows: pd.DataFrame, y: np.ndarray, seed: int = 0, regression: bool = False) -> list[Fold]:
    """The one fold of a cross-corpus experiment: train/dev from corpus A's rows (``cross_role ==
    "train"``) by A's protocol, test = every row of corpus B (``cross_role == "test"``).

    A cross-validated A (a ``fold`` column) trains on all its folds, with dev carved from held-out
    training groups (as for an official split without dev); an official A keeps its dev, or carves
    one, and leaves its own test rows out. Raises :class:`HeadError` when either side has no rows.
    """
    role = rows[CROSS_ROLE].to_numpy()
    a, b = role == "train", role == "test"
    name_a = rows["corpus"][a].iloc[0] if a.any() and "corpus" in rows else "the training corpus"
    name_b = rows["corpus"][b].iloc[0] if b.any() and "corpus" in rows else "the test corpus"
    if not a.any():
        raise HeadError(f"cross-corpus: no labelled rows of {name_a} to train on")
    if not b.any():
        raise HeadError(f"cross-corpus: no labelled rows of {name_b} to test on")
    sub = rows[a]
    how = "official split"
    if "fold" in sub and sub["fold"].notna().any():
        how = f"{sub['fold'].nunique()} folds, all training data"
        sub = sub.drop(columns="fold").assign(split="train")
    elif "fold" in sub:
        sub = sub.drop(columns="fold")
    (inner,) = plan_folds(sub.drop(columns=CROSS_ROLE), y[a], seed, regression)
    train, dev, test = np.zeros(len(rows), bool), np.zeros(len(rows), bool), b.copy()
    train[a], dev[a] = inner.train, inner.dev
    unused = int(inner.test.sum())
    # the inner note leads ("dev = random 20% ..." says dev shares speakers with training, wherever it is read)
    note = (f"{inner.dev_note} (train/dev from {name_a}: {how}" + (f"; its {unused} test rows unused" if unused else "")
            + f"); test = all {int(b.sum())} rows of {name_b}")
    return [Fold("cross", train, dev, test, note)]
