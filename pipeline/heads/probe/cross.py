"""Cross-corpus probes: a probe head trained on corpus A's store, tested on corpus B's, through a label map.

Both stores are the same backbone's (``features/<A>/<backbone>.zarr`` and ``features/<B>/...``), so
their features share one space; the joined manifest (:func:`pipeline.experiment.cross.cross_corpus`)
keeps the items each store has, and the experiment runner plans the single ``cross`` fold (train
and dev from A by A's protocol, test = every mapped item of B). Model selection (C, alpha, layer,
epoch) therefore only ever sees A; B is only predicted. Speaker normalisation, when the head asks for
it, z-scores within each (corpus-qualified) speaker, so it needs no label of B either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.config import LabelMap
from pipeline.core.errors import HeadError
from pipeline.core.manifest import Corpus
from pipeline.core.store import FeatureStore
from pipeline.experiment.cross import cross_corpus, store_rows
from pipeline.experiment.results import experiment_header, write_skipped
from pipeline.heads.base import head_settings
from pipeline.heads.probe.run import run_features, select_layer


def run_cross_probe(
    train: Corpus,
    test: Corpus,
    stores: tuple[FeatureStore, FeatureStore],
    head_name: str,
    head_cfg: Any,
    label_map: tuple[str, LabelMap],
    *,
    model_dir: str | Path,
    metrics_path: str | Path,
    predictions_dir: str | Path,
) -> dict[str, Any]:
    """Fit probe ``head_name`` on ``train`` (selection on its dev), score every mapped item of ``test``.

    ``stores`` are the backbone's stores of ``train`` and ``test``; ``label_map`` is ``(name, map)``.
    Writes the usual model, predictions and experiment JSON; the result carries ``train_corpus``,
    ``test_corpus`` and ``cross_corpus`` (what the map kept and dropped, per corpus and label).
    """
    settings = head_settings(head_name, head_cfg, family="probe")
    name, lmap = label_map
    joined, info = cross_corpus(train, test, name, lmap)
    store_a, store_b = stores
    backbone = store_a.attrs.get("backbone", store_a.path.stem)
    result: dict[str, Any] = {**experiment_header(joined, backbone, head_name),
                              "train_corpus": train.name, "test_corpus": test.name, "cross_corpus": info}
    outputs = {"model_dir": model_dir, "metrics_path": metrics_path, "predictions_dir": predictions_dir}
    for corpus, store in ((train, store_a), (test, store_b)):
        if not store.applicable:
            return write_skipped(result, f"{corpus.name}: {store.attrs.get('reason', 'not applicable')}", **outputs)
    if store_a.layered != store_b.layered or store_a.attrs.get("dims") != store_b.attrs.get("dims"):
        raise HeadError(f"{store_a.path} and {store_b.path} hold different features (dims "
                        f"{store_a.attrs.get('dims')} vs {store_b.attrs.get('dims')}): rebuild both with one backbone")
    layer, layer_name = select_layer(store_a, settings.layer)
    wanted = set(joined.manifest["id"])
    ids, blocks = [], []
    for corpus, store in ((train, store_a), (test, store_b)):
        qualified = store_rows(np.asarray(store.ids), corpus.name)
        keep = np.isin(qualified, list(wanted))
        if not keep.any():
            raise HeadError(f"{store.path}: none of its items has a label the map {name} keeps")
        blocks.append(store.pooled([i for i, k in zip(store.ids, keep) if k], layer=layer).astype(np.float32))
        ids += list(qualified[keep])
    has = set(ids)
    joined.manifest = joined.manifest[joined.manifest["id"].isin(has)].reset_index(drop=True)
    info["without_features"] = {c: int(n) for c, n in zip(
        (train.name, test.name), (info["kept"][train.name] - len(blocks[0]), info["kept"][test.name] - len(blocks[1])))}
    return run_features(joined, ids, np.concatenate(blocks), head_name, settings, result,
                        layer_name=layer_name, **outputs)
