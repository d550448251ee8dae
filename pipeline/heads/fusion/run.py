"""Running a fusion head: align the member stores by id, concatenate, and fit like a probe.

The members are the backbones of the run item (``egemaps+minilm+fer``). Items are aligned by id; an
utterance missing from some member's store (media skipped at segment time) cannot be fused and is
dropped — the JSON's ``dropped`` counts them per member, with a few example ids. A member that does
not apply (a text backbone without transcripts) skips the whole fusion with that reason. Layered
members use ``layer`` (``last`` or an index) or ``member_layers: {wav2vec2: 7}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.core.errors import HeadError
from pipeline.core.manifest import Corpus
from pipeline.core.config import split_members
from pipeline.core.store import FeatureStore
from pipeline.experiment.results import experiment_header, write_skipped
from pipeline.heads.base import head_settings
from pipeline.heads.probe.run import run_features, select_layer


def fusion_backbone(members: Sequence[str]) -> str:
    """The ``backbone`` name of a fusion: its members joined by '+' (``egemaps+minilm+fer``)."""
    return "+".join(members)


def fusion_members(backbone: str) -> list[str]:
    """The members of a fusion run item's ``backbone`` (``egemaps+minilm+fer``), checked."""
    return split_members(backbone, "run.fusions", "a fusion's backbone is two or more different backbones joined by '+'",
                         at_least=2)


def align_members(
    corpus: Corpus, stores: dict[str, FeatureStore], settings: Any
) -> tuple[list[str], np.ndarray, list, dict]:
    """Ids present in every member, their concatenated features, ``member_dims`` and the drop report.

    Ids follow manifest order. ``dropped`` = {"n": items lost, "per_member": {name: missing in that
    store}, "examples": first ids lost}.
    """
    present = {name: set(s.ids) for name, s in stores.items()}
    union = set().union(*present.values())
    order = [uid for uid in corpus.manifest["id"] if uid in union]
    ids = [uid for uid in order if all(uid in p for p in present.values())]
    lost = [uid for uid in order if not all(uid in p for p in present.values())]
    dropped = {
        "n": len(lost),
        "per_member": {name: sum(uid not in p for uid in order) for name, p in present.items()},
        "examples": lost[:10],
    }
    blocks, dims, layers = [], [], {}
    for name, store in stores.items():
        layer, label = select_layer(store, settings.member_layers.get(name, settings.layer))
        if label:
            layers[name] = label
        block = store.pooled(ids, layer=layer).astype(np.float32)
        blocks.append(block)
        dims.append([name, int(block.shape[1])])
    return ids, np.concatenate(blocks, axis=1), dims, {"dropped": dropped, "layers": layers}


def run_fusion(
    corpus: Corpus,
    stores: dict[str, FeatureStore],
    head_name: str,
    head_cfg: Any,
    *,
    model_dir: str | Path,
    metrics_path: str | Path,
    predictions_dir: str | Path,
) -> dict[str, Any]:
    """Fit and evaluate fusion head ``head_name`` over member ``stores`` (in member order)."""
    settings = head_settings(head_name, head_cfg, family="fusion")
    members = list(stores)
    result: dict[str, Any] = {
        **experiment_header(corpus, fusion_backbone(members), head_name),
        "members": members,
        "fusion": settings.type or head_name,
    }
    outputs = {"model_dir": model_dir, "metrics_path": metrics_path, "predictions_dir": predictions_dir}
    skipped = [f"{name}: {s.attrs.get('reason', 'not applicable')}" for name, s in stores.items() if not s.applicable]
    if skipped:
        return write_skipped(result, "member not applicable — " + "; ".join(skipped), **outputs)
    ids, X, dims, info = align_members(corpus, stores, settings)
    result["dropped"] = info["dropped"]
    if not ids:
        raise HeadError(f"fusion {result['backbone']} on {corpus.name}: no utterance is in every member's store")
    layer_name = ",".join(f"{m}:{l}" for m, l in info["layers"].items())
    return run_features(corpus, ids, X, head_name, settings, result, layer_name=layer_name, member_dims=dims,
                         **outputs)
