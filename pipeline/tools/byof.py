"""Bring your own features: import precomputed per-utterance features into a feature store, or export one.

Many benchmarks distribute features instead of (or beside) models — MERTools (MER2023/MER2024
baselines), EmoBox, Emotion-LLaMA's MER feature packs — as a folder of ``<id>.npy`` files, one per
utterance, or as HDF5. Importing them gives a normal store (``features/<corpus>/<backbone>.zarr``,
written atomically through :func:`pipeline.core.store.write_store`) that the probe and report use like
any other backbone's.

Array layouts (``layout``; ``auto`` decides by the number of dimensions: 1 → pooled, 2 → frames,
3 → layer_frames — a 2-D ``[L, D]`` file needs ``layout: layers``):

======================  ===============  ==================================================
layout                  array per id     store
======================  ===============  ==================================================
``pooled``              [D]              pooled [D]
``frames``              [T, D]           pooled = pooling over T (``pooling``), frames [T, D]
``layers``              [L, D]           pooled [L, D]
``layer_frames``        [L, T, D]        pooled [L, D] (pooled over T), frames of ``frame_layer``
======================  ===============  ==================================================

Sources: a directory of ``<id>.npy`` (file name without ``.npy`` = manifest ``id``), or an HDF5 file
with one dataset per id (under ``group``, default the root) or the table layout written by
:func:`export_hdf5` (datasets ``ids`` + ``features`` [N, ...], optionally ``frames`` + ``offsets``).
Ids are checked against the prepared corpus's manifest: ids the manifest does not know are an
error naming the first few (wrong corpus, or files named differently); manifest ids without
features are an error, or with ``on_missing: skip`` are left out and reported (``n_missing``,
``missing_ids`` in the store attributes). All arrays must agree in shape (except T) and be finite.

CLI::

    python -m pipeline.tools.byof import feats/ --corpus mer2023 --backbone mer_videomae --modality video
    python -m pipeline.tools.byof import feats.h5 --prepared data/x/prepared --backbone b --on-missing skip
    python -m pipeline.tools.byof export features/mer2023/mer_videomae.zarr out.h5 [--layout per_id]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import numpy as np

from pipeline.core.cli import report_error
from pipeline.core.errors import AffectBenchError
from pipeline.core.settings import Settings, parse
from pipeline.features.backbones.base import POOLINGS, Embedding, pool

LAYOUTS = ("auto", "pooled", "frames", "layers", "layer_frames")
ON_MISSING = ("error", "skip")
MODALITIES = ("audio", "text", "video", "multimodal", "unknown")
N_SHOWN = 5  # ids named in an error message
N_RECORDED = 50  # missing ids kept in the store attributes

Loader = Callable[[], "np.ndarray | Embedding"]


class ByofError(AffectBenchError, ValueError):
    """Features that cannot be imported or exported; the message names the file and the problem."""


def _examples(ids: list[str]) -> str:
    more = f" (and {len(ids) - N_SHOWN} more)" if len(ids) > N_SHOWN else ""
    return f"{ids[:N_SHOWN]}{more}"


def resolve_layout(array: np.ndarray, layout: str) -> str:
    """``auto`` → the layout the array's number of dimensions implies; an explicit layout as it is."""
    if layout == "auto":
        return {1: "pooled", 2: "frames", 3: "layer_frames"}.get(array.ndim, f"<{array.ndim}-d>")
    return layout


def to_embedding(array: np.ndarray, layout: str, pooling: str = "mean", frame_layer: int = -1) -> Embedding:
    """One utterance's array in ``layout`` (resolved, not auto) → pooled (+ frames)."""
    ndim = {"pooled": 1, "frames": 2, "layers": 2, "layer_frames": 3}.get(layout)
    if ndim is None or array.ndim != ndim:
        raise ByofError(f"array of shape {array.shape} does not fit layout {layout!r}")
    array = array.astype(np.float32, copy=False)
    if layout == "frames":
        return Embedding(pool(array, pooling).astype(np.float32), array)
    if layout == "layer_frames":
        return Embedding(pool(array, pooling).astype(np.float32), array[frame_layer])
    return Embedding(array)


def manifest_ids(corpus_prepared_dir: str | Path) -> tuple[str, list[str]]:
    """(corpus name, manifest ids in order) of a prepared corpus."""
    from pipeline.core import manifest

    corpus = manifest.load(corpus_prepared_dir)
    return corpus.name, corpus.manifest["id"].astype(str).tolist()


def import_features(
    loaders: Mapping[str, Loader],
    corpus_prepared_dir: str | Path,
    out_store: str | Path,
    backbone_name: str,
    *,
    source: str,
    layout: str = "auto",
    on_missing: str = "error",
    pooling: str = "mean",
    frame_layer: int = -1,
    modality: str = "unknown",
    frame_rate: float | None = None,
) -> dict[str, Any]:
    """Check ``loaders`` (id → array loader) against the manifest and write the store; return a report.

    The common core of :func:`import_npy_dir` and :func:`import_hdf5`. Arrays are loaded one at a
    time, in manifest order, after the ids have been checked (a wrong folder fails fast).
    """
    if on_missing not in ON_MISSING:
        raise ByofError(f"on_missing must be one of {ON_MISSING}, got {on_missing!r}")
    if pooling not in POOLINGS:
        raise ByofError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if modality not in MODALITIES:
        raise ByofError(f"modality must be one of {MODALITIES}, got {modality!r}")
    if layout not in LAYOUTS:
        raise ByofError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    corpus_name, ids = manifest_ids(corpus_prepared_dir)
    known = set(ids)
    unknown = sorted(uid for uid in loaders if uid not in known)
    if unknown:
        raise ByofError(
            f"{source}: {len(unknown)} of {len(loaders)} feature ids are not in the manifest of corpus "
            f"{corpus_name} ({corpus_prepared_dir}), e.g. {_examples(unknown)}; ids must equal the "
            f"manifest's id column (the file or dataset name without extension)"
        )
    missing = [uid for uid in ids if uid not in loaders]
    if missing and on_missing == "error":
        raise ByofError(
            f"{source}: {len(missing)} of {len(ids)} utterances of corpus {corpus_name} have no features, "
            f"e.g. {_examples(missing)}; provide them or set on_missing: skip (they are then left out "
            f"and listed in the store attributes)"
        )
    present = [uid for uid in ids if uid in loaders]
    if not present:
        raise ByofError(f"{source}: no features for any utterance of corpus {corpus_name}")

    digest = hashlib.sha256()
    pooled, frames = [], []
    resolved = None
    for uid in present:
        item = loaders[uid]()
        if not isinstance(item, Embedding):
            array = np.asarray(item)
            if not np.issubdtype(array.dtype, np.number):
                raise ByofError(f"{source}: {uid}: not a numeric array (dtype {array.dtype})")
            resolved = resolved or resolve_layout(array, layout)
            try:
                item = to_embedding(array, resolved, pooling, frame_layer)
            except ByofError as err:
                raise ByofError(f"{source}: {uid}: {err} (the first item set the layout)") from err
        for part in (item.pooled, item.frames):
            if part is not None and not np.isfinite(part).all():
                raise ByofError(f"{source}: {uid}: features contain NaN or infinite values")
        if pooled and item.pooled.shape != pooled[0].shape:
            raise ByofError(f"{source}: {uid}: pooled shape {item.pooled.shape} differs from {pooled[0].shape}")
        if frames and (item.frames is None) != (frames[0] is None):
            raise ByofError(f"{source}: {uid}: some items have frame features and others do not")
        if frames and item.frames is not None and item.frames.shape[1:] != frames[0].shape[1:]:
            raise ByofError(f"{source}: {uid}: frame shape {item.frames.shape} differs from {frames[0].shape}")
        digest.update(uid.encode())
        digest.update(np.ascontiguousarray(item.pooled, np.float32).tobytes())
        if item.frames is not None:
            digest.update(np.ascontiguousarray(item.frames, np.float32).tobytes())
        pooled.append(np.asarray(item.pooled, np.float32))
        frames.append(item.frames)

    from pipeline.core.hashing import params_hash
    from pipeline.core.store import write_store

    options = {"layout": layout, "pooling": pooling, "frame_layer": frame_layer, "on_missing": on_missing}
    has_frames = frames[0] is not None
    attrs = {
        "backbone": backbone_name,
        "type": "byof",
        "modality": modality,
        "corpus": corpus_name,
        "source": source,
        "revision": "sha256:" + digest.hexdigest()[:16],  # of the imported content: changes iff features do
        "params_hash": params_hash(options),
        "code_version": _code_version(),
        "frame_rate": frame_rate,
        "layout": resolved or "table",
        "pooling": pooling,
        "n_missing": len(missing),
        "missing_ids": missing[:N_RECORDED],
    }
    write_store(out_store, ids=present, pooled=np.stack(pooled), frames=frames if has_frames else None, attrs=attrs)
    return {
        "store": str(out_store),
        "corpus": corpus_name,
        "n": len(present),
        "n_missing": len(missing),
        "missing_ids": missing,
        "layout": attrs["layout"],
        "pooled_shape": list(pooled[0].shape),
        "has_frames": has_frames,
    }


def _code_version() -> str:
    from pipeline.core.hashing import code_version

    return code_version(__name__)


def import_npy_dir(
    src_dir: str | Path, corpus_prepared_dir: str | Path, out_store: str | Path, backbone_name: str, **options: Any
) -> dict[str, Any]:
    """Import a folder of ``<id>.npy`` files; ``options`` as for :func:`import_features`."""
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise ByofError(f"{src_dir}: not a directory of <id>.npy files")
    files = sorted(src_dir.glob("*.npy"))
    if not files:
        raise ByofError(f"{src_dir}: no .npy files here (expected one <id>.npy per utterance)")

    def loader(path: Path) -> Loader:
        def load() -> np.ndarray:
            try:
                return np.load(path, allow_pickle=False)
            except ValueError as err:  # pickled object arrays: never unpickle downloaded files
                raise ByofError(f"{path}: not a plain numeric .npy array ({err})") from err

        return load

    loaders = {f.name[: -len(".npy")]: loader(f) for f in files}
    return import_features(loaders, corpus_prepared_dir, out_store, backbone_name, source=str(src_dir), **options)


def _strings(dataset) -> list[str]:
    values = dataset[...]
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values.reshape(-1)]


def import_hdf5(
    file: str | Path,
    corpus_prepared_dir: str | Path,
    out_store: str | Path,
    backbone_name: str,
    *,
    group: str = "/",
    **options: Any,
) -> dict[str, Any]:
    """Import an HDF5 file: one dataset per id under ``group``, or datasets ``ids`` + ``features``.

    The table layout may add ``frames`` [F, D] + ``offsets`` [N+1] (what :func:`export_hdf5` writes):
    then ``features`` are taken as the pooled features as they are and ``frames`` as the frames.
    """
    import h5py

    file = Path(file)
    if not file.is_file():
        raise ByofError(f"{file}: HDF5 file not found")
    try:
        h5 = h5py.File(file, "r")
    except OSError as err:
        raise ByofError(f"{file}: not a readable HDF5 file ({err})") from err
    with h5:
        if group not in h5:
            raise ByofError(f"{file}: no group {group!r}")
        node = h5[group]
        if "ids" in node and "features" in node:
            ids = _strings(node["ids"])
            feats = node["features"]
            if len(ids) != len(feats):
                raise ByofError(f"{file}: {len(ids)} ids but {len(feats)} rows of features")
            if len(set(ids)) != len(ids):
                raise ByofError(f"{file}: duplicate ids in 'ids'")
            if "frames" in node and "offsets" in node:
                flat, offsets = node["frames"], node["offsets"][...]

                def loader(i: int) -> Loader:
                    return lambda: Embedding(feats[i], flat[int(offsets[i]) : int(offsets[i + 1])])
            else:

                def loader(i: int) -> Loader:
                    return lambda: feats[i]

            loaders = {uid: loader(i) for i, uid in enumerate(ids)}
        else:
            names = [k for k, v in node.items() if isinstance(v, h5py.Dataset)]
            if not names:
                subgroups = [k for k, v in node.items() if isinstance(v, h5py.Group)]
                raise ByofError(
                    f"{file}: no datasets in {group!r} (expected one dataset per id, or 'ids' + 'features'); "
                    f"subgroups: {subgroups[:N_SHOWN]} — pass group=<one of them>"
                )
            loaders = {name: (lambda name=name: node[name][...]) for name in names}
        return import_features(
            loaders, corpus_prepared_dir, out_store, backbone_name, source=f"{file}:{group}", **options
        )


class ByofSettings(Settings):
    """A mapping describing precomputed features to import, in the shape of a ``backbones.<name>``
    section (``type: byof``) for notebooks and custom scripts. ``byof`` is not a registered backbone
    type: the embed stage does not read such a section; import with the CLI, then track the store."""

    type: Literal["byof"] = "byof"
    path: str  # a folder of <id>.npy or an .h5 file
    group: str = "/"  # HDF5 group holding the datasets
    layout: Literal[LAYOUTS] = "auto"
    on_missing: Literal[ON_MISSING] = "error"
    pooling: Literal[POOLINGS] = "mean"
    frame_layer: int = -1
    modality: Literal[MODALITIES] = "unknown"
    frame_rate: float | None = None


def import_from_cfg(name: str, cfg: Any, corpus_prepared_dir: str | Path, out_store: str | Path) -> dict:
    """Import features described by ``cfg`` (:class:`ByofSettings`: ``path`` to an npy folder or .h5 file
    plus the import options); ``name`` is the store's backbone name and the section named in errors."""
    s = parse(ByofSettings, cfg, f"backbones.{name}")
    options = s.model_dump(exclude={"type", "path", "group"})
    if Path(s.path).is_dir():
        return import_npy_dir(s.path, corpus_prepared_dir, out_store, name, **options)
    return import_hdf5(s.path, corpus_prepared_dir, out_store, name, group=s.group, **options)


def _attr_value(value: Any) -> Any:
    """Store attributes as HDF5 attributes: scalars and strings as they are, the rest as JSON."""
    if value is None:
        return "null"
    if isinstance(value, (str, int, float, bool, np.generic)):
        return value
    return json.dumps(value)


def export_hdf5(store: str | Path, file: str | Path, *, layout: str = "table", what: str = "pooled") -> dict[str, Any]:
    """Write a feature store as HDF5 (atomically).

    ``layout: table`` (default, lossless): datasets ``ids`` (UTF-8), ``features`` = pooled [N, (L,) D]
    and, when the store has them, ``frames`` [F, D] + ``offsets`` [N+1]; the store attributes become
    file attributes. ``layout: per_id``: one dataset per id holding its pooled features, or with
    ``what: frames`` its frame features [T, D].
    """
    import h5py

    from pipeline.core.io import atomic_file
    from pipeline.core.store import FeatureStore

    fs = FeatureStore(store)
    if not fs.applicable:
        raise ByofError(f"{store}: store is not applicable ({fs.attrs.get('reason')}); nothing to export")
    if layout not in ("table", "per_id") or what not in ("pooled", "frames"):
        raise ByofError(f"layout must be table|per_id and what pooled|frames, got {layout!r}, {what!r}")
    has_frames = "frames" in fs.group
    if what == "frames" and not has_frames:
        raise ByofError(f"{store}: no frame features to export (what: frames)")
    if any("/" in uid for uid in fs.ids) and layout == "per_id":
        raise ByofError(f"{store}: ids contain '/', which HDF5 reads as groups; use layout: table")
    pooled = fs.pooled()
    with atomic_file(file, "w+b") as fh, h5py.File(fh, "w") as h5:  # h5py reads back while writing
        h5.attrs.update({k: _attr_value(v) for k, v in fs.attrs.items()})
        if layout == "table":
            h5.create_dataset("ids", data=np.array(fs.ids, dtype=object), dtype=h5py.string_dtype())
            h5.create_dataset("features", data=pooled)
            if has_frames:
                h5.create_dataset("frames", data=fs.group["frames"][...])
                h5.create_dataset("offsets", data=fs.group["offsets"][...])
        else:
            for i, uid in enumerate(fs.ids):
                h5.create_dataset(uid, data=fs.frames(uid) if what == "frames" else pooled[i])
    return {"file": str(file), "n": len(fs.ids), "layout": layout, "what": what, "has_frames": has_frames}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tools.byof", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="folder of <id>.npy or an HDF5 file → feature store")
    imp.add_argument("src", help="directory of <id>.npy files, or an .h5/.hdf5 file")
    where = imp.add_mutually_exclusive_group(required=True)
    where.add_argument("--corpus", help="corpus name (reads data/<corpus>/prepared)")
    where.add_argument("--prepared", help="a prepared corpus directory (manifest.parquet + corpus.json)")
    imp.add_argument("--backbone", required=True, help="the name the features get (features/<corpus>/<backbone>.zarr)")
    imp.add_argument("--out", help="store path (default: features/<corpus>/<backbone>.zarr)")
    imp.add_argument("--layout", default="auto", choices=LAYOUTS)
    imp.add_argument("--on-missing", default="error", choices=ON_MISSING)
    imp.add_argument("--pooling", default="mean", choices=POOLINGS)
    imp.add_argument("--frame-layer", type=int, default=-1)
    imp.add_argument("--modality", default="unknown", choices=MODALITIES)
    imp.add_argument("--frame-rate", type=float, default=None, help="frames per second of [T, D] features")
    imp.add_argument("--group", default="/", help="HDF5 group holding the datasets (default: root)")
    exp = sub.add_parser("export", help="feature store → HDF5")
    exp.add_argument("store")
    exp.add_argument("file")
    exp.add_argument("--layout", default="table", choices=("table", "per_id"))
    exp.add_argument("--what", default="pooled", choices=("pooled", "frames"))
    args = parser.parse_args(argv)

    from pipeline.core.paths import prepared_dir, store_path

    try:
        if args.command == "export":
            info = export_hdf5(args.store, args.file, layout=args.layout, what=args.what)
            print(f"exported {info['n']} utterances to {info['file']} ({info['layout']}, {info['what']})")
            return 0
        prepared = Path(args.prepared) if args.prepared else prepared_dir(args.corpus)
        corpus_name, _ = manifest_ids(prepared)
        out = Path(args.out) if args.out else store_path(corpus_name, args.backbone)
        options = dict(
            layout=args.layout, on_missing=args.on_missing, pooling=args.pooling,
            frame_layer=args.frame_layer, modality=args.modality, frame_rate=args.frame_rate,
        )
        src = Path(args.src)
        if src.is_dir():
            info = import_npy_dir(src, prepared, out, args.backbone, **options)
        else:
            info = import_hdf5(src, prepared, out, args.backbone, group=args.group, **options)
    except AffectBenchError as err:
        return report_error(err, "byof")
    print(
        f"imported {info['n']} utterances of {info['corpus']} into {info['store']} "
        f"(layout {info['layout']}, pooled {info['pooled_shape']}, frames: {info['has_frames']})"
    )
    if info["n_missing"]:
        print(f"skipped {info['n_missing']} utterances without features, e.g. {_examples(info['missing_ids'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
