"""Bring-your-own-features import/export on tiny synthetic feature folders and HDF5 files."""

import h5py
import numpy as np
import pandas as pd
import pytest

from pipeline.core import manifest
from pipeline.core.errors import ConfigError
from pipeline.tools.byof import ByofError, export_hdf5, import_from_cfg, import_hdf5, import_npy_dir, main
from pipeline.core.store import FeatureStore

IDS = [f"utt{i:02d}" for i in range(6)]
RNG = np.random.default_rng(0)


@pytest.fixture
def prepared(tmp_path):
    """A prepared corpus with six utterances (only the manifest ids matter here)."""
    df = pd.DataFrame(
        {"id": IDS, "speaker": ["a", "a", "b", "b", "c", "c"], "split": ["train"] * 4 + ["test"] * 2,
         "audio": [f"{u}.wav" for u in IDS], "video": "", "text": "", "emotion": ["happy", "sad"] * 3}
    )
    corpus = manifest.Corpus("tiny", df, [manifest.Task("emotion", classes=["happy", "sad"])], root=str(tmp_path))
    out = tmp_path / "prepared"
    manifest.save(corpus, out)
    return out


def write_npy(folder, arrays):
    folder.mkdir(parents=True, exist_ok=True)
    for uid, arr in arrays.items():
        np.save(folder / f"{uid}.npy", arr)
    return folder


def test_utterance_level_npy(prepared, tmp_path):
    arrays = {u: RNG.normal(size=8).astype(np.float16) for u in reversed(IDS)}  # order on disk does not matter
    src = write_npy(tmp_path / "feats", arrays)
    info = import_npy_dir(src, prepared, tmp_path / "s.zarr", "mine", modality="audio")
    store = FeatureStore(tmp_path / "s.zarr")
    assert store.ids == IDS and info["layout"] == "pooled" and not info["has_frames"]
    np.testing.assert_allclose(store.pooled(["utt03"])[0], arrays["utt03"].astype(np.float32))
    a = store.attrs
    assert (a["backbone"], a["type"], a["modality"], a["corpus"], a["dims"], a["n_missing"]) == (
        "mine", "byof", "audio", "tiny", 8, 0,
    )
    assert a["revision"].startswith("sha256:") and a["complete"] and a["source"] == str(src)


def test_frame_level_npy_pooled_and_frames(prepared, tmp_path):
    arrays = {u: RNG.normal(size=(3 + i, 4)).astype(np.float32) for i, u in enumerate(IDS)}
    src = write_npy(tmp_path / "feats", arrays)
    import_npy_dir(src, prepared, tmp_path / "s.zarr", "mine", pooling="mean+std", frame_rate=25.0)
    store = FeatureStore(tmp_path / "s.zarr")
    x = arrays["utt02"]
    np.testing.assert_allclose(store.pooled(["utt02"])[0], np.concatenate([x.mean(0), x.std(0)]), rtol=1e-6)
    np.testing.assert_array_equal(store.frames("utt05"), arrays["utt05"])
    assert store.attrs["frame_rate"] == 25.0 and store.attrs["has_frames"]


def test_layered_npy(prepared, tmp_path):
    layer_frames = {u: RNG.normal(size=(3, 5, 4)).astype(np.float32) for u in IDS}
    import_npy_dir(write_npy(tmp_path / "a", layer_frames), prepared, tmp_path / "a.zarr", "m", frame_layer=1)
    store = FeatureStore(tmp_path / "a.zarr")
    assert store.layered and store.attrs["layers"] == 3
    np.testing.assert_allclose(store.pooled(["utt01"])[0], layer_frames["utt01"].mean(1), rtol=1e-6)
    np.testing.assert_array_equal(store.frames("utt01"), layer_frames["utt01"][1])
    layers = {u: RNG.normal(size=(3, 4)).astype(np.float32) for u in IDS}
    import_npy_dir(write_npy(tmp_path / "b", layers), prepared, tmp_path / "b.zarr", "m", layout="layers")
    assert FeatureStore(tmp_path / "b.zarr").pooled(layer=-1).shape == (6, 4)


def test_unknown_ids_are_an_error_naming_them(prepared, tmp_path):
    arrays = {u: np.zeros(4) for u in IDS} | {"other_corpus_1": np.zeros(4), "other_corpus_2": np.zeros(4)}
    with pytest.raises(ByofError, match=r"2 of 8 feature ids are not in the manifest of corpus tiny.*other_corpus_1"):
        import_npy_dir(write_npy(tmp_path / "f", arrays), prepared, tmp_path / "s.zarr", "m")
    assert not (tmp_path / "s.zarr").exists()


def test_missing_ids_error_or_skip(prepared, tmp_path):
    src = write_npy(tmp_path / "f", {u: np.ones(4) for u in IDS[:4]})
    with pytest.raises(ByofError, match=r"2 of 6 utterances .* no features.*utt04.*on_missing: skip"):
        import_npy_dir(src, prepared, tmp_path / "s.zarr", "m")
    info = import_npy_dir(src, prepared, tmp_path / "s.zarr", "m", on_missing="skip")
    store = FeatureStore(tmp_path / "s.zarr")
    assert store.ids == IDS[:4] and info["missing_ids"] == ["utt04", "utt05"]
    assert store.attrs["n_missing"] == 2 and store.attrs["missing_ids"] == ["utt04", "utt05"]


def test_inconsistent_or_bad_arrays(prepared, tmp_path):
    arrays = {u: np.zeros(4) for u in IDS} | {"utt03": np.zeros(5)}
    with pytest.raises(ByofError, match="utt03: pooled shape"):
        import_npy_dir(write_npy(tmp_path / "a", arrays), prepared, tmp_path / "s.zarr", "m")
    arrays = {u: np.zeros(4) for u in IDS} | {"utt01": np.full(4, np.nan)}
    with pytest.raises(ByofError, match="utt01: features contain NaN"):
        import_npy_dir(write_npy(tmp_path / "b", arrays), prepared, tmp_path / "s.zarr", "m")
    with pytest.raises(ByofError, match="does not fit layout 'layers'"):
        import_npy_dir(write_npy(tmp_path / "c", {u: np.zeros(4) for u in IDS}), prepared, tmp_path / "s.zarr", "m",
                       layout="layers")
    (tmp_path / "d").mkdir()
    np.save(tmp_path / "d" / "utt00.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ByofError, match="not a plain numeric .npy"):
        import_npy_dir(tmp_path / "d", prepared, tmp_path / "s.zarr", "m", on_missing="skip")
    (tmp_path / "e").mkdir()
    with pytest.raises(ByofError, match="no .npy files"):
        import_npy_dir(tmp_path / "e", prepared, tmp_path / "s.zarr", "m")


def test_hdf5_one_dataset_per_id_and_table(prepared, tmp_path):
    arrays = {u: RNG.normal(size=(4, 6)).astype(np.float32) for u in IDS}
    with h5py.File(tmp_path / "per_id.h5", "w") as f:
        grp = f.create_group("video")
        for uid, arr in arrays.items():
            grp.create_dataset(uid, data=arr)
    with pytest.raises(ByofError, match="no datasets in '/'.*subgroups: \\['video'\\]"):
        import_hdf5(tmp_path / "per_id.h5", prepared, tmp_path / "a.zarr", "m")
    import_hdf5(tmp_path / "per_id.h5", prepared, tmp_path / "a.zarr", "m", group="video")
    np.testing.assert_array_equal(FeatureStore(tmp_path / "a.zarr").frames("utt04"), arrays["utt04"])

    table = RNG.normal(size=(6, 10)).astype(np.float32)
    with h5py.File(tmp_path / "table.h5", "w") as f:
        f.create_dataset("ids", data=np.array([u.encode() for u in IDS[::-1]]))  # fixed-length bytes
        f.create_dataset("features", data=table[::-1])
    import_hdf5(tmp_path / "table.h5", prepared, tmp_path / "b.zarr", "m")
    np.testing.assert_array_equal(FeatureStore(tmp_path / "b.zarr").pooled(), table)


def test_export_round_trip(prepared, tmp_path):
    arrays = {u: RNG.normal(size=(2 + i, 3, 4)).astype(np.float32) for i, u in enumerate(IDS)}
    arrays = {u: a.transpose(1, 0, 2) for u, a in arrays.items()}  # [L=3, T, D=4]
    import_npy_dir(write_npy(tmp_path / "f", arrays), prepared, tmp_path / "s.zarr", "m")
    original = FeatureStore(tmp_path / "s.zarr")
    export_hdf5(tmp_path / "s.zarr", tmp_path / "out.h5")
    with h5py.File(tmp_path / "out.h5") as f:
        assert f["features"].shape == (6, 3, 4) and f.attrs["backbone"] == "m" and f.attrs["layers"] == 3
    import_hdf5(tmp_path / "out.h5", prepared, tmp_path / "t.zarr", "m")
    again = FeatureStore(tmp_path / "t.zarr")
    np.testing.assert_array_equal(again.pooled(), original.pooled())
    for uid in IDS:
        np.testing.assert_array_equal(again.frames(uid), original.frames(uid))
    assert again.attrs["revision"] == original.attrs["revision"]  # same content, same hash

    export_hdf5(tmp_path / "s.zarr", tmp_path / "frames.h5", layout="per_id", what="frames")
    with h5py.File(tmp_path / "frames.h5") as f:
        assert sorted(f) == IDS and f["utt03"].shape == arrays["utt03"][-1].shape


def test_import_from_params(prepared, tmp_path):
    src = write_npy(tmp_path / "f", {u: np.ones(3) for u in IDS})
    cfg = {"type": "byof", "path": str(src), "modality": "video"}
    info = import_from_cfg("mine", cfg, prepared, tmp_path / "s.zarr")
    assert info["n"] == 6 and FeatureStore(tmp_path / "s.zarr").attrs["modality"] == "video"
    with pytest.raises(ConfigError, match="backbones.mine.path is required"):
        import_from_cfg("mine", {"type": "byof"}, prepared, tmp_path / "s.zarr")
    with pytest.raises(ConfigError, match="backbones.mine.layout = 'flat'"):
        import_from_cfg("mine", {"type": "byof", "path": str(src), "layout": "flat"}, prepared, tmp_path / "s.zarr")


def test_cli(prepared, tmp_path, capsys):
    src = write_npy(tmp_path / "f", {u: np.ones(3) for u in IDS[:5]})
    out = tmp_path / "s.zarr"
    argv = ["import", str(src), "--prepared", str(prepared), "--backbone", "mine", "--out", str(out)]
    assert main(argv) == 1
    assert "have no features" in capsys.readouterr().err
    assert main([*argv, "--on-missing", "skip"]) == 0
    text = capsys.readouterr().out
    assert "imported 5 utterances of tiny" in text and "skipped 1 utterances without features" in text
    assert main(["export", str(out), str(tmp_path / "x.h5")]) == 0
    assert (tmp_path / "x.h5").exists()
