"""Fusion: one head over several backbones' cached features of the same corpus.

A fusion head is a ``heads.<name>`` section with ``type: concat | late | attention`` and
``members: [egemaps, minilm, fer]`` (the backbones, in this order); its options are described in
:mod:`pipeline.heads.fusion`. Its results use the probe's metrics contract with
``backbone = "egemaps+minilm+fer"``: ``metrics/experiments/<corpus>/<members>/<head>.json``,
``metrics/predictions/<corpus>/<members>/<head>/<task>.csv`` and ``models/<corpus>/<members>/<head>/``.

Items are aligned by id. An utterance missing from some member's store (media skipped at segment
time, a failed embedding) cannot be fused and is dropped; the JSON's ``dropped`` counts them per
member, with a few example ids, and the stage prints the total. A member that does not apply to
the corpus (a text backbone without transcripts) skips the whole fusion with that reason, as the
probe does. Layered members use ``layer`` (``last`` or an index, for every layered member) or
``member_layers: {wav2vec2: 7}``; ``best``/``weighted`` are per-backbone choices and are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.config import ConfigError
from pipeline.heads import LAYER_MODES
from pipeline.io import write_json
from pipeline.manifest import Corpus
from pipeline.probe import run_tasks, select_layer, write_skipped
from pipeline.store import FeatureStore

FUSION_TYPES = ("concat", "late", "attention")


def fusion_backbone(members: Sequence[str]) -> str:
    """The ``backbone`` name of a fusion: its members joined by '+' (``egemaps+minilm+fer``)."""
    return "+".join(members)


def fusion_members(head_name: str, cfg: dict[str, Any]) -> list[str]:
    """Validated member list of fusion head ``head_name``."""
    kind = cfg.get("type", head_name)
    if kind not in FUSION_TYPES:
        raise ConfigError(f"heads.{head_name}: type {kind!r} is not a fusion type {FUSION_TYPES}")
    members = cfg.get("members")
    if not isinstance(members, list) or len(members) < 2 or len(set(members)) != len(members):
        raise ConfigError(f"heads.{head_name}.members: a list of at least two different backbones, got {members!r}")
    return [str(m) for m in members]


def align(
    corpus: Corpus, stores: dict[str, FeatureStore], cfg: dict[str, Any]
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
        wanted = cfg.get("member_layers", {}).get(name, cfg.get("layer", "last"))
        if wanted in LAYER_MODES:
            raise ConfigError(f"fusion member {name}: layer {wanted!r} is not available in fusion (last or an index)")
        layer, label = select_layer(store, wanted)
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
    head_cfg: dict[str, Any],
    *,
    model_dir: str | Path,
    metrics_path: str | Path,
    predictions_dir: str | Path,
) -> dict[str, Any]:
    """Fit and evaluate fusion head ``head_name`` over member ``stores`` (ordered as ``members``)."""
    members = list(stores)
    result: dict[str, Any] = {
        "corpus": corpus.name,
        "backbone": fusion_backbone(members),
        "head": head_name,
        "members": members,
        "fusion": head_cfg.get("type", head_name),
    }
    skipped = [f"{name}: {s.attrs.get('reason', 'not applicable')}" for name, s in stores.items() if not s.applicable]
    if skipped:
        reason = "member not applicable — " + "; ".join(skipped)
        return write_skipped(result, reason, model_dir, metrics_path, predictions_dir)
    ids, X_all, dims, info = align(corpus, stores, head_cfg)
    result["dropped"] = info["dropped"]
    if not ids:
        raise ConfigError(f"fusion {result['backbone']} on {corpus.name}: no utterance is in every member's store")
    layer_name = ",".join(f"{m}:{l}" for m, l in info["layers"].items())
    result["tasks"] = run_tasks(
        corpus, ids, X_all, head_name, {**head_cfg, "member_dims": dims},
        layer_name=layer_name, model_dir=model_dir, predictions_dir=predictions_dir,
    )
    write_json(metrics_path, result)
    return result
