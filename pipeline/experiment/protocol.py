"""Protocols: the train/dev/test masks of every fold, from what the manifest encodes.

An official train/dev/test split is one fold. A ``fold`` column means cross-validation: each fold
is the test set once and dev is the next fold (with only two folds, a stratified 20 % of the
training utterances, since no held-out group is left). An official split without dev carves one:
whole held-out training groups (speakers, sessions, conversations) when there are at least three,
else a stratified 20 % of the training utterances. Every fold says how its dev was made
(``dev_note``). Model selection only ever sees train and dev.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from pipeline.core.errors import HeadError


@dataclass
class Fold:
    name: str
    train: np.ndarray  # boolean masks over the task's rows
    dev: np.ndarray
    test: np.ndarray
    dev_note: str = ""

    def restrict(self, keep: np.ndarray) -> "Fold":
        """The same fold over the rows selected by boolean mask ``keep``."""
        return Fold(self.name, self.train[keep], self.dev[keep], self.test[keep], self.dev_note)


def _stratified_dev(train: np.ndarray, y: np.ndarray, seed: int, regression: bool) -> np.ndarray:
    idx = np.flatnonzero(train)
    strat = None if regression else y[idx]
    if strat is not None and min(pd.Series(strat).value_counts()) < 2:
        strat = None
    _, dev_idx = train_test_split(idx, test_size=0.2, random_state=seed, stratify=strat)
    dev = np.zeros_like(train)
    dev[dev_idx] = True
    return dev


def plan_folds(rows: pd.DataFrame, y: np.ndarray, seed: int = 0, regression: bool = False) -> list[Fold]:
    """Train/dev/test masks for every fold of the protocol the manifest encodes."""
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
                dev = _stratified_dev(~test, y, seed, regression)
                note = "dev = random 20% of training utterances (only 2 folds: no held-out group left)"
                folds.append(Fold(f"fold{k}", ~test & ~dev, dev, test, note))
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
            dev = _stratified_dev(train, y, seed, regression)
            note = "dev = random 20% of training utterances"
        train = train & ~dev
    if not train.any():
        raise HeadError("no training utterances")
    return [Fold("official", train, dev, test, note)]
