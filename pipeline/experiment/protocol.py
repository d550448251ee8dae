"""Protocols: the train/dev/test masks of every fold, from what the manifest encodes.

An official train/dev/test split is one fold. A ``fold`` column means cross-validation: each fold
is the test set once and dev is the next fold (with only two folds, a stratified 20 % of the
training utterances, since no held-out group is left). An official split without dev carves one:
whole held-out training groups (speakers, sessions, conversations) when there are at least three,
else a stratified 20 % of the training utterances. When stratifying is impossible (a class with a
single training utterance, or fewer dev or remaining training utterances than classes) the 20 % is
drawn unstratified. Every fold says how its dev was made (``dev_note``), fallbacks included. Model
selection only ever sees train and dev.

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
