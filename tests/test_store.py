import numpy as np
import pytest

from pipeline.core.errors import StoreError
from pipeline.core.store import FeatureStore, write_not_applicable, write_store


def test_round_trip_pooled_layers_and_ragged_frames(tmp_path):
    ids = [f"u{i}" for i in range(5)]
    pooled = np.random.default_rng(0).normal(size=(5, 3, 8)).astype(np.float32)
    frames = [np.full((n, 4), i, np.float32) for i, n in enumerate([3, 0, 2, 5, 1])]
    write_store(tmp_path / "s.zarr", ids=ids, pooled=pooled, frames=frames, attrs={"backbone": "b"})
    store = FeatureStore(tmp_path / "s.zarr")
    assert store.ids == ids and store.layered and store.attrs["layers"] == 3 and store.attrs["dims"] == 8
    np.testing.assert_array_equal(store.pooled(["u3", "u0"]), pooled[[3, 0]])
    np.testing.assert_array_equal(store.pooled(["u1"], layer=2), pooled[[1], 2])
    np.testing.assert_array_equal(store.pooled(layer=-1), pooled[:, -1])  # negative: from the end, as numpy
    np.testing.assert_array_equal(store.pooled(["u4"], layer=-3), pooled[[4], 0])
    with pytest.raises(StoreError, match="layer 3 out of range"):
        store.pooled(layer=3)
    assert store.frames("u1").shape == (0, 4)
    np.testing.assert_array_equal(store.frames("u3"), frames[3])
    with pytest.raises(StoreError, match="not in store"):
        store.pooled(["nope"])


def test_store_is_sharded_into_few_files(tmp_path):
    n = 3000
    write_store(tmp_path / "s.zarr", ids=[str(i) for i in range(n)], pooled=np.ones((n, 13, 64), np.float32), attrs={})
    files = [p for p in (tmp_path / "s.zarr").rglob("*") if p.is_file()]
    assert len(files) < 15, files


def test_killed_write_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    import pipeline.core.store as store_mod

    def boom(*a, **k):
        raise KeyboardInterrupt  # what a kill during writing looks like to Python

    monkeypatch.setattr(store_mod, "write_array", boom)
    with pytest.raises(KeyboardInterrupt):
        write_store(tmp_path / "s.zarr", ids=["a"], pooled=np.ones((1, 2)), attrs={})
    assert not (tmp_path / "s.zarr").exists()
    assert list(tmp_path.iterdir()) == []  # no temp leftovers either


def test_incomplete_store_is_refused(tmp_path):
    import zarr

    zarr.open_group(str(tmp_path / "s.zarr"), mode="w").attrs["backbone"] = "x"
    with pytest.raises(StoreError, match="incomplete"):
        FeatureStore(tmp_path / "s.zarr")


def test_not_applicable_store(tmp_path):
    write_not_applicable(tmp_path / "s.zarr", reason="no transcripts", attrs={"backbone": "minilm"})
    store = FeatureStore(tmp_path / "s.zarr")
    assert not store.applicable and store.attrs["reason"] == "no transcripts"
