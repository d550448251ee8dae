"""Any HEAR 2021 module as a backbone: ``load_model``, ``get_scene_embeddings``, ``get_timestamp_embeddings``.

The API is HEAR 2021's (https://hearbenchmark.com/hear-api.html; checked against ``hear-validator``
2021.0.6 and ``hearbaseline`` 2021.1.1): a module exposes ``load_model(model_file_path="")``, returning a
``torch.nn.Module`` with the attributes ``sample_rate``, ``scene_embedding_size`` and
``timestamp_embedding_size``; ``get_scene_embeddings(audio [n_sounds, n_samples], model) -> [n_sounds,
scene_dim]``; and ``get_timestamp_embeddings(audio, model) -> (emb [n_sounds, n_timestamps, dim],
timestamps_ms [n_sounds, n_timestamps])``. Weights and licence are the module's own (``model_file``).
TensorFlow HEAR modules are not supported (TensorFlow is not part of this stack).

Options:

- ``module`` (required): the module's importable name (``hearbaseline.naive``, ``mypackage.hear``). A
  name that does not resolve to a module is a params error, found at validation time without importing it.
- ``model_file`` (default ``""``): passed to ``load_model``; ``""`` is the module's own default.
  Relative paths are relative to the working directory (the repository root under DVC).
- ``embedding``: ``scene`` (default; ``pooled`` = ``get_scene_embeddings``) or ``timestamp`` (``pooled``
  = the timestamp embeddings pooled over time with ``pooling``: mean | mean+std | max).
- ``frames`` (default false): also store the timestamp embeddings as frame features; their frame
  rate is 1000 / hop, the hop being read from the module's timestamps on a 2-s probe at load time
  (``describe()``: ``timestamp_hop_ms``, ``first_timestamp_ms``, so frame *i* is centred at
  first + *i* × hop ms). Irregular timestamps are then an error.
- ``min_seconds`` (default 0): shorter inputs are zero-padded first (counted in ``n_padded``), for
  modules with a minimum input length.
- ``device``: auto | cpu | cuda — where the model and the audio tensors go.

Audio: the 16 kHz segments are resampled to ``model.sample_rate`` with ``soxr`` at ``soxr_hq``
quality (what ``librosa.load(f, sr=...)`` does; :func:`~pipeline.features.backbones.clap.resample`),
and each utterance is one call with ``n_sounds = 1``: HEAR batches must share one length, and
padding would change the embeddings. Outputs are checked: a wrong shape (against the model's
declared sizes) or a NaN/infinity is a BackboneError naming the module, the function and the input
length; so is a module that cannot be imported, lacks one of the three functions, or whose model
lacks the attributes.

Provenance: ``describe()`` records ``hear_module``, its version (``__version__`` of the module or its
package, else that of the installed distribution holding its file; ``?`` in ``revision`` when there is
none), the SHA-256 of the module's own source file and the digest of ``model_file``; ``revision``
(which keys the embed cache) joins the three. **DVC sees neither the module's code nor the model
file**: the embed stages depend on this project's files and params only, so after upgrading or
editing the module, or replacing the model file, run ``dvc repro --force -s embed@<corpus>-<backbone>``.
When the stage runs, the embed cache notices a new version, model file or edit of the module's own file (not of the
files it imports) and recomputes.

Params example::

    backbones:
      hear_naive: {type: hear, module: hearbaseline.naive}   # needs librosa < 0.10 (see tests/data/hear_naive.py)
      my_hear: {type: hear, module: mypackage.hear, model_file: models/pretrained/my_hear.pt,
                embedding: timestamp, pooling: mean+std, frames: true}
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, StrictBool, field_validator

from pipeline.core.audio import pad_to, seconds_to_samples
from pipeline.core.errors import BackboneError
from pipeline.core.runtime import Device, file_digest, resolve_device, resolve_revision
from pipeline.features.backbones.base import Backbone, BackboneSettings, Embedding, Pooling, pool, register_backbone
from pipeline.features.backbones.clap import resample

API = ("load_model", "get_scene_embeddings", "get_timestamp_embeddings")
MODEL_ATTRIBUTES = ("sample_rate", "scene_embedding_size", "timestamp_embedding_size")
PROBE_SECONDS = 2.0  # the load-time probe: long enough for two timestamps at any sensible hop
MAX_HOP_DEVIATION_MS = 1.0  # hear-validator's tolerance for "regular" timestamps


def find_module(name: str) -> bool:
    """Whether ``name`` resolves to an importable module, found without executing any package code
    (a top-level ``find_spec``, then each part looked up in its parent's search path)."""
    if name in sys.modules:
        return True
    parts = name.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
        for i in range(1, len(parts)):
            if spec is None or spec.submodule_search_locations is None:
                return False
            spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), spec.submodule_search_locations)
    except (ImportError, ValueError):
        return False
    return spec is not None


class HearSettings(BackboneSettings):
    module: str  # the HEAR module's importable name, e.g. hearbaseline.naive
    model_file: str = ""  # passed to load_model(model_file_path); "" = the module's default
    embedding: Literal["scene", "timestamp"] = "scene"  # what `pooled` holds
    pooling: Pooling = "mean"  # embedding: timestamp: timestamp embeddings pooled over time
    frames: StrictBool = False  # also store the timestamp embeddings as frame features
    min_seconds: float = Field(0.0, ge=0)  # shorter inputs are zero-padded first
    device: Device = "auto"

    @field_validator("module")
    @classmethod
    def _importable(cls, name: str) -> str:
        if not all(part.isidentifier() for part in name.split(".")):
            raise ValueError("not a module name (dotted Python identifiers, e.g. hearbaseline.naive)")
        if not find_module(name):
            raise ValueError(f"no module {name!r} is importable here (installed? on PYTHONPATH?)")
        return name


def module_version(module: Any) -> str | None:
    """``__version__`` of the module or of its top-level package, else the version of the installed
    distribution whose files hold the module's file (None when there is none)."""
    top = module.__name__.split(".")[0]
    for mod in (module, sys.modules.get(top)):
        version = getattr(mod, "__version__", None)
        if version:
            return str(version)
    path = getattr(module, "__file__", None)
    if not path:
        return None
    from importlib import metadata

    path = Path(path).resolve()
    for name in metadata.packages_distributions().get(top, []):  # a top-level name may be shared: check files
        dist = metadata.distribution(name)
        if any(Path(dist.locate_file(f)).resolve() == path for f in dist.files or []):
            return dist.version
    return None


def source_digest(module: Any) -> str | None:
    """``sha256:<16 hex>`` of the module's own source file (None for a module without one)."""
    path = getattr(module, "__file__", None)
    if not path or not Path(path).is_file():
        return None
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


@register_backbone(
    "hear", description="any HEAR 2021 module (`load_model`, scene / timestamp embeddings), audio resampled to its rate",
    settings=HearSettings, licence="that of the module and its weights", weights="the module's own (`model_file`)",
    verified="the module's own `get_scene_embeddings` / `get_timestamp_embeddings` on the .wav read by "
             "`librosa.load(sr=model.sample_rate)` (hearbaseline's naive module, its librosa ≥ 0.10 call mended): "
             "cos ≥ 0.9999, equal timestamp counts",
    verified_by="tests/test_hear.py::test_hear_backbone_equals_the_module_on_librosa_loaded_audio",
)
class HearBackbone(Backbone):
    modality = "audio"

    def __init__(self, name: str, settings: HearSettings):
        super().__init__(name, settings)
        import torch

        self._torch = torch
        self.where = f"backbones.{name}"
        self.module_name = settings.module
        try:
            self.module = importlib.import_module(settings.module)
        except ImportError as err:
            raise BackboneError(f"{self.where}: cannot import HEAR module {settings.module!r}: {err}") from err
        missing = [fn for fn in API if not callable(getattr(self.module, fn, None))]
        if missing:
            raise BackboneError(f"{self.where}: module {settings.module!r} lacks {', '.join(missing)} "
                                f"(a HEAR 2021 module exposes {', '.join(API)})")
        self.model_file = None
        if settings.model_file:
            self.model_file = Path(settings.model_file).expanduser()
            if not self.model_file.exists():
                raise BackboneError(f"{self.where}.model_file: {settings.model_file} does not exist")
        self.model = self._load_model()
        self.device = resolve_device(settings.device)
        self.model.to(self.device).eval()
        self.rate = self._size("sample_rate")
        self.scene_dim = self._size("scene_embedding_size")
        self.timestamp_dim = self._size("timestamp_embedding_size")
        self.embedding = settings.embedding
        self.pooling = settings.pooling
        self.has_frames = settings.frames  # instance override: frames only when asked for
        self.min_samples = seconds_to_samples(settings.min_seconds)
        self.version = module_version(self.module)
        self.code_digest = source_digest(self.module)
        self.n_padded = 0
        self.n_empty = 0
        self.hop_ms = self.first_ms = None
        self._probe()

    def _fn(self, name: str) -> str:
        return f"{self.module_name}.{name}"

    def _load_model(self):
        path = "" if self.model_file is None else str(self.model_file)
        try:
            model = self.module.load_model(path) if path else self.module.load_model()
        except Exception as err:  # the module's own failure, named: it is not our code
            raise BackboneError(f"{self.where}: {self._fn('load_model')}({path!r}) failed: "
                                f"{type(err).__name__}: {err}") from err
        if not isinstance(model, self._torch.nn.Module):
            raise BackboneError(f"{self.where}: {self._fn('load_model')} returned a {type(model).__name__}, not a "
                                "torch.nn.Module (TensorFlow HEAR modules are not supported)")
        missing = [a for a in MODEL_ATTRIBUTES if not hasattr(model, a)]
        if missing:
            raise BackboneError(f"{self.where}: the model {self._fn('load_model')} returned lacks {', '.join(missing)}")
        return model

    def _size(self, attribute: str) -> int:
        value = getattr(self.model, attribute)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise BackboneError(f"{self.where}: model.{attribute} = {value!r} is not a positive int")
        return int(value)

    def _probe(self) -> None:
        """Run the functions this backbone uses on 2 s of noise: shapes are checked before any corpus
        item is, and (with ``frames``) the timestamps give the hop, i.e. the frame rate."""
        noise = (0.1 * np.random.default_rng(0).standard_normal(int(PROBE_SECONDS * self.rate))).astype(np.float32)
        if self.embedding == "scene":
            self._scene(noise)
        if self.embedding == "timestamp" or self.has_frames:
            _, stamps = self._timestamps(noise)
            if self.has_frames:
                if len(stamps) < 2:
                    raise BackboneError(f"{self.where}: {self._fn('get_timestamp_embeddings')} gave {len(stamps)} "
                                        f"timestamp(s) for {PROBE_SECONDS:g} s of audio: cannot tell its hop")
                diffs = np.diff(stamps.astype(np.float64))
                hop = float(diffs.mean())
                if hop <= 0 or np.abs(diffs - hop).max() > MAX_HOP_DEVIATION_MS:
                    raise BackboneError(f"{self.where}: {self._fn('get_timestamp_embeddings')} gave irregular "
                                        f"timestamps {stamps[:6].tolist()}...: frames need one hop")
                self.hop_ms, self.first_ms = hop, float(stamps[0])

    def _call(self, fn: str, audio: np.ndarray):
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(audio, np.float32))[None].to(self.device)
        try:
            with torch.inference_mode():
                return getattr(self.module, fn)(x, self.model)
        except Exception as err:
            raise BackboneError(f"{self.where}: {self._fn(fn)} failed on {len(audio)} samples at {self.rate} Hz: "
                                f"{type(err).__name__}: {err}") from err

    def _array(self, value: Any, what: str, shape: tuple, n: int) -> np.ndarray:
        """``value`` (a tensor or array) as float32 numpy, checked against ``shape`` (None = any length)."""
        if hasattr(value, "detach"):
            value = value.detach().float().cpu().numpy()
        array = np.asarray(value, dtype=np.float32) if isinstance(value, np.ndarray) else None
        if array is None or array.ndim != len(shape) or any(s is not None and a != s for a, s in zip(array.shape, shape)):
            got = tuple(array.shape) if array is not None else type(value).__name__
            want = tuple("T" if s is None else s for s in shape)
            raise BackboneError(f"{self.where}: {self._fn(what)} returned {got} for {n} samples, expected {want}")
        if not np.isfinite(array).all():
            raise BackboneError(f"{self.where}: {self._fn(what)} returned non-finite values (NaN or infinity) "
                                f"for {n} samples")
        return array

    def _scene(self, audio: np.ndarray) -> np.ndarray:
        out = self._call("get_scene_embeddings", audio)
        return self._array(out, "get_scene_embeddings", (1, self.scene_dim), len(audio))[0]

    def _timestamps(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self._call("get_timestamp_embeddings", audio)
        fn = "get_timestamp_embeddings"
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise BackboneError(f"{self.where}: {self._fn(fn)} returned a {type(out).__name__}, expected "
                                "(embeddings, timestamps)")
        emb = self._array(out[0], fn, (1, None, self.timestamp_dim), len(audio))[0]
        stamps = self._array(out[1], fn + " (timestamps)", (1, emb.shape[0]), len(audio))[0]
        return emb, stamps

    def embed(self, batch: Sequence[np.ndarray]) -> list[Embedding]:
        out = []
        for audio in batch:
            audio, padded = pad_to(audio, self.min_samples)
            self.n_padded += padded
            wav = resample(audio, self.rate)
            frames = None
            if self.embedding == "timestamp" or self.has_frames:
                frames, _ = self._timestamps(wav)
                self.n_empty += frames.shape[0] == 0
            pooled = self._scene(wav) if self.embedding == "scene" else pool(frames, self.pooling).astype(np.float32)
            out.append(Embedding(pooled, frames if self.has_frames else None))
        return out

    def describe(self) -> dict[str, Any]:
        model = None
        if self.model_file is not None:
            model = resolve_revision(self.model_file) if self.model_file.is_dir() else file_digest(self.model_file)
        revision = "; ".join(p for p in (f"{self.module_name}=={self.version or '?'}",
                                         self.code_digest and f"code {self.code_digest}",
                                         model and f"model {model}") if p)
        return {
            "source": self.module_name if self.model_file is None else f"{self.module_name}:{self.model_file}",
            "revision": revision,
            "frame_rate": 1000.0 / self.hop_ms if self.has_frames else None,
            "hear_module": self.module_name,
            "hear_module_version": self.version,
            "hear_module_code": self.code_digest,
            "model_file": None if self.model_file is None else str(self.model_file),
            "model_file_digest": model,
            "hear_sample_rate": self.rate,
            "embedding": self.embedding,
            "scene_embedding_size": self.scene_dim,
            "timestamp_embedding_size": self.timestamp_dim,
            "timestamp_hop_ms": self.hop_ms,
            "first_timestamp_ms": self.first_ms,
            "n_padded": self.n_padded,
            "n_empty": self.n_empty,
        }
