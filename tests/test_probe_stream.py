"""``layer: best`` sweeps reading a layered store layer by layer (pipeline/heads/probe/stream.py).

The streamed sweep must give the results of the in-memory one (chosen layer, dev scores, test
predictions), with and without speaker normalisation, for the batched sweep in one block and in
many, and for the reference path (one fit per layer); and it must never ask the store for more
layers at once than a block (one layer on the reference path).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import pipeline.heads.probe.run as run_mod
import pipeline.heads.probe.stream as stream_mod
from pipeline.core.store import FeatureStore
from pipeline.heads.probe.stream import LayerSource, LayerView, block_layers, merge_details
from tests.factories import feature_corpus, run_head

C_GRID = [0.01, 0.1, 1.0]


def probe(tmp_path, name, corpus, store, cfg, *, stream: bool, monkeypatch, block_bytes=None):
    monkeypatch.setattr(run_mod, "STREAM_LAYERS", stream)
    if block_bytes is not None:
        monkeypatch.setattr(stream_mod, "BLOCK_BYTES", block_bytes)
    result = run_head(tmp_path / name, corpus, store, "logreg", cfg)
    preds = pd.read_csv(next((tmp_path / name / "p").glob("*.csv")))
    return result, preds


def folds(result):
    return result["tasks"]["emotion"]["folds"]


def record_reads(monkeypatch):
    calls = []
    original = FeatureStore.layers

    def layers(self, a, b, ids=None):
        calls.append((a, b))
        return original(self, a, b, ids)

    monkeypatch.setattr(FeatureStore, "layers", layers)
    return calls


@pytest.mark.parametrize("case", [
    {"sweep": "batched", "block_bytes": None},  # the whole toy store is one block: as in memory
    {"sweep": "batched", "block_bytes": 2 * 270 * 6 * 4},  # two layers per block
    {"sweep": "sklearn", "block_bytes": None},  # the reference path: one layer at a time
    {"sweep": "batched", "block_bytes": None, "speaker_norm": True},
])
def test_streamed_sweep_matches_the_in_memory_one(tmp_path, monkeypatch, case):
    corpus, store = feature_corpus(tmp_path, layers=5)
    cfg = {"C_grid": C_GRID, "layer": "best", "sweep": case["sweep"], "speaker_norm": case.get("speaker_norm", False)}
    ref, ref_preds = probe(tmp_path, "mem", corpus, store, cfg, stream=False, monkeypatch=monkeypatch)
    calls = record_reads(monkeypatch)
    got, got_preds = probe(tmp_path, "stream", corpus, FeatureStore(store.path), cfg, stream=True,
                           monkeypatch=monkeypatch, block_bytes=case["block_bytes"])
    n_layers = 6
    widths = {b - a for a, b in calls}
    if case["sweep"] == "sklearn":
        assert widths == {1}
    elif case["block_bytes"]:
        assert max(widths) == 2 and len(calls) >= 3
    else:
        assert (0, n_layers) in calls
    assert max(widths) < n_layers or case["sweep"] == "batched" and not case["block_bytes"]
    for a, b in zip(folds(ref), folds(got)):
        assert a["layer"]["chosen"] == b["layer"]["chosen"]
        np.testing.assert_allclose(a["layer"]["dev_scores"], b["layer"]["dev_scores"], atol=1e-9)
        assert a["selection"] == b["selection"]
        if case["sweep"] == "batched":
            assert a["layer"]["dev_uar_by_C"].keys() == b["layer"]["dev_uar_by_C"].keys()
            assert all(len(v) == n_layers for v in b["layer"]["dev_uar_by_C"].values())
    pd.testing.assert_frame_equal(ref_preds, got_preds)
    assert json.dumps(ref["tasks"]["emotion"]["test"], sort_keys=True) == json.dumps(
        got["tasks"]["emotion"]["test"], sort_keys=True)


def test_a_layer_view_selects_rows_lazily_and_reads_one_block():
    full = np.arange(7 * 4 * 3, dtype=np.float32).reshape(7, 4, 3)
    reads = []

    def read(a, b):
        reads.append((a, b))
        return full[:, a:b].copy()

    view = LayerView(LayerSource(read, 7, 4, 3, transform=lambda x: x * 2))
    sub = view[np.array([True, False, True, True, False, False, True])][[2, 0]]
    assert sub.shape == (2, 4, 3) and reads == []
    np.testing.assert_array_equal(sub[:, 1], full[[3, 0], 1] * 2)
    np.testing.assert_array_equal(view[[1]][:, 1], full[[1], 1] * 2)  # the same block: not read again
    assert reads == [(1, 2)]
    np.testing.assert_array_equal(sub[:, 1:3], full[[3, 0], 1:3] * 2)
    np.testing.assert_array_equal(np.asarray(view), full * 2)
    with pytest.raises(TypeError):
        view[0, 1]


def test_blocks_and_merging():
    assert block_layers(100_000, 1024, 25) == 1  # 10 GB store: one layer (0.4 GB) per block
    assert block_layers(10_000, 1024, 25) == 13 and block_layers(1000, 768, 13) == 13
    merged = merge_details([
        {"scores": [0.1, 0.2], "refit": [{"C": 1}, {"C": 2}], "dev_uar_by_C": {"1": [0.1, 0.2]}, "unconverged": 1,
         "sweep": "batched"},
        {"scores": [0.3], "refit": [{"C": 3}], "dev_uar_by_C": {"1": [0.3]}, "unconverged": 2, "sweep": "batched"},
    ])
    assert merged == {"scores": [0.1, 0.2, 0.3], "refit": [{"C": 1}, {"C": 2}, {"C": 3}],
                      "dev_uar_by_C": {"1": [0.1, 0.2, 0.3]}, "unconverged": 3, "sweep": "batched"}


def test_standardising_in_place_never_touches_the_callers_array():
    from pipeline.heads.probe.batched_logreg import standardise_layers

    one = np.random.default_rng(0).normal(size=(50, 1, 4)).astype(np.float32)  # swaps without a copy
    many = np.random.default_rng(1).normal(size=(50, 3, 4)).astype(np.float32)
    for x in (one, many):
        before = x.copy()
        tr, dv = standardise_layers(x, x[:10])
        assert np.array_equal(x, before)
        np.testing.assert_allclose(tr.numpy().mean(1), 0, atol=1e-5)
        np.testing.assert_allclose(dv.numpy(), tr.numpy()[:, :10], atol=1e-6)
