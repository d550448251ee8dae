"""Any AffectBench audio backbone as a HEAR 2021 module: ``hear-validator pipeline.tools.hear_export -m hear.yaml``.

The API is HEAR 2021's (https://hearbenchmark.com/hear-api.html; checked with ``hear-validator``
2021.0.6): this module exposes ``load_model(model_file_path)``, ``get_scene_embeddings(audio, model)``
and ``get_timestamp_embeddings(audio, model)``, so the HEAR tools (``hear-validator``, heareval's
embedding runner) take it by name, with the model file as their ``--model`` / ``-m`` argument. ``pipeline``
must be importable there: ``PYTHONPATH=.`` from the repository root (console scripts do not search the
working directory) or this clone installed (``pip install --no-deps -e .``). ``hear-validator`` itself
imports TensorFlow, which this project's environment does not install: run it where TensorFlow is
(``tests/test_hear.py`` runs its checks here with a stand-in).

The model file (YAML or JSON) names the backbone and how its outputs become HEAR embeddings::

    backbone: egemaps             # a backbones.<name> section of `params` ...
    params: params.yaml           # ... (default params.yaml; relative to this file's folder)
    # backbone: {type: opensmile, feature_set: eGeMAPSv02, lld: true}   # ... or the section inline
    layer: -1                     # layered backbones ([L, D] pooled): the layer of the scene embedding
    timestamps: auto              # auto | frames | windows
    window_ms: 1000               # windows: each timestamp's window ...
    hop_ms: 50                    # ... and the hop between timestamps

``load_model("")`` (what the HEAR tools call without ``-m``) reads the file named by the environment
variable ``AFFECTBENCH_HEAR_MODEL``; without it, it is an error that says so. Paths inside the backbone
section (``source``, ``checkpoint``) are read as ``params.yaml`` reads them: relative to the working
directory. The backbone's own options decide everything else (``device``, ``pooling``, ``frame_layer``,
``lld``, ...); ``model.to(device)`` moves nothing, since the backbone places its own model.

- ``sample_rate`` is 16000 (AffectBench's rate: the backbone sees exactly what the embed stage gives it).
- ``get_scene_embeddings``: the backbone's pooled utterance embedding of each sound (``layer`` of a
  layered one), [n_sounds, scene_embedding_size].
- ``get_timestamp_embeddings``: with ``timestamps: frames`` (``auto``'s choice when the backbone has
  frame features: hf_audio, emotion2vec, opensmile with ``lld: true``, resemblyzer with
  ``partials: true``, hear with ``frames: true``) the backbone's frames, timestamped at the centre of
  each frame period, (i + 0.5) × 1000 / frame_rate ms (exact for frames that tile the input; a frame
  whose window is longer than the hop is centred a little later: wav2vec2's 25-ms receptive field at a
  20-ms hop by 2.5 ms, openSMILE's 20-ms LLD frames at a 10-ms hop by 5 ms); every sound of a batch
  must give the same number of frames (resemblyzer's VAD may not: use ``windows``). With ``timestamps: windows`` (``auto``'s
  choice otherwise) the scene embedding of a ``window_ms`` window centred every ``hop_ms`` from 0 ms to
  the end of the sound, each window cut to the sound (no zero padding, which would change e.g. eGeMAPS
  functionals): one backbone call per window, so cost grows with window / hop.

Inputs are torch tensors [n_sounds, n_samples] in [-1, 1] on any device; outputs are float32 tensors
on the input's device. Only audio backbones can be exported.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml
from pydantic import Field

from pipeline.core.audio import SAMPLE_RATE
from pipeline.core.errors import BackboneError, ConfigError
from pipeline.core.settings import Settings, parse
from pipeline.features.backbones.base import BACKBONES, Backbone, build_backbone

MODEL_ENV = "AFFECTBENCH_HEAR_MODEL"  # the model file load_model("") reads
PROBE_SECONDS = 1.0  # load_model embeds this much noise once to learn the embedding sizes


class HearExportSettings(Settings):
    """The model file: which backbone, and how its outputs become HEAR embeddings."""

    backbone: str | dict[str, Any]  # a backbones.<name> of `params`, or an inline backbone section
    params: str = "params.yaml"  # where a named backbone is looked up (relative to the model file)
    layer: int = -1  # layered backbones: the pooled layer used as the scene embedding
    timestamps: Literal["auto", "frames", "windows"] = "auto"
    window_ms: float = Field(1000.0, gt=0)  # timestamps: windows
    hop_ms: float = Field(50.0, gt=0)


class AffectBenchHearModel(torch.nn.Module):
    """The HEAR model object: the backbone plus the attributes the HEAR API requires."""

    sample_rate = SAMPLE_RATE

    def __init__(self, backbone: Backbone, settings: HearExportSettings, model_file: Path):
        super().__init__()
        self.backbone = backbone
        self.settings = settings
        self.model_file = model_file
        self.layer = settings.layer
        self.frame_rate = None
        if settings.timestamps == "frames" and not backbone.has_frames:
            raise ConfigError(f"{model_file}: timestamps: frames, but backbone {backbone.name!r} has no frame "
                              "features with these options (use timestamps: windows, or enable its frames)")
        self.timestamps = "frames" if settings.timestamps != "windows" and backbone.has_frames else "windows"
        if self.timestamps == "frames":
            self.frame_rate = backbone.describe().get("frame_rate")
            if not self.frame_rate:
                raise BackboneError(f"{model_file}: backbone {backbone.name!r} records no frame_rate for its frames "
                                    "(use timestamps: windows)")
        noise = (0.1 * np.random.default_rng(0).standard_normal(int(PROBE_SECONDS * SAMPLE_RATE))).astype(np.float32)
        probe = _embed(self, [noise])[0]
        self.scene_embedding_size = int(self._scene(probe.pooled).shape[-1])
        self.timestamp_embedding_size = (int(probe.frames.shape[-1]) if self.timestamps == "frames"
                                         else self.scene_embedding_size)

    def _scene(self, pooled: np.ndarray) -> np.ndarray:
        """The scene vector of one pooled output: itself, or ``layer`` of a layered [L, D] one."""
        if pooled.ndim == 1:
            if self.layer != -1:
                raise ConfigError(f"{self.model_file}: layer: {self.layer}, but backbone {self.backbone.name!r} is "
                                  "not layered (its pooled output is one vector)")
            return pooled
        if not -pooled.shape[0] <= self.layer < pooled.shape[0]:
            raise ConfigError(f"{self.model_file}: layer: {self.layer} is out of range for backbone "
                              f"{self.backbone.name!r}'s {pooled.shape[0]} layers")
        return pooled[self.layer]

    def info(self) -> dict[str, Any]:
        """Provenance: the backbone's own record plus how it was exported."""
        return {**self.backbone.describe(), "export": self.settings.dump(), "timestamps": self.timestamps}


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"{path}: cannot read it: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not YAML/JSON: {str(err).splitlines()[0]}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of keys, got {type(data).__name__}")
    return data


def load_model(model_file_path: str = "") -> AffectBenchHearModel:
    """The HEAR model for the backbone the model file names (``""``: the file in ``AFFECTBENCH_HEAR_MODEL``)."""
    name = model_file_path or os.environ.get(MODEL_ENV, "")
    if not name:
        raise ConfigError(f"pipeline.tools.hear_export.load_model: no model file: pass one (hear-validator -m "
                          f"hear.yaml) or set {MODEL_ENV}; it names the backbone (see this module's docstring)")
    path = Path(name).expanduser()
    settings = parse(HearExportSettings, _read(path), "hear", source=str(path))
    if isinstance(settings.backbone, dict):
        backbone_name, cfg, where, source = path.stem, settings.backbone, "hear.backbone", path
    else:
        source = path.parent / settings.params
        backbones = _read(source).get("backbones") or {}
        backbone_name, where = settings.backbone, f"backbones.{settings.backbone}"
        if backbone_name not in backbones:
            raise ConfigError(f"{source}: no backbones.{backbone_name} (named by {path}); "
                              f"known: {', '.join(sorted(backbones))}")
        cfg = backbones[backbone_name]
    # validated here, so that a problem names the file the section is in (build_backbone would say params.yaml)
    if not isinstance(cfg, dict) or not cfg.get("type"):
        raise ConfigError(f"{source}: {where}: needs a mapping with a 'type' (one of {', '.join(BACKBONES.names())})")
    try:
        schema = BACKBONES.get(cfg["type"]).settings
    except ConfigError as err:
        raise ConfigError(f"{source}: {where}.type: {err}") from None
    cfg = parse(schema, cfg, where, source=str(source))
    backbone = build_backbone(backbone_name, cfg)
    if backbone.modality != "audio":
        raise ConfigError(f"{path}: backbone {backbone_name!r} is a {backbone.modality} backbone; HEAR modules "
                          "embed audio")
    return AffectBenchHearModel(backbone, settings, path)


def _embed(model: AffectBenchHearModel, inputs: list[np.ndarray]):
    with torch.inference_mode():
        return model.backbone.embed(inputs)


def _sounds(audio: torch.Tensor, model: Any) -> np.ndarray:
    """HEAR's input contract, checked: a [n_sounds, n_samples] tensor and this module's model."""
    if not isinstance(model, AffectBenchHearModel):
        raise TypeError(f"model must be what pipeline.tools.hear_export.load_model returns, got {type(model).__name__}")
    if not isinstance(audio, torch.Tensor):
        raise TypeError(f"audio must be a torch tensor [n_sounds, n_samples], got {type(audio).__name__}")
    if audio.ndim != 2:
        raise ValueError(f"audio must be 2-D [n_sounds, n_samples], got shape {tuple(audio.shape)}")
    if audio.shape[1] == 0:
        raise ValueError("audio has no samples")
    return audio.detach().to("cpu", torch.float32).numpy()


def _tensor(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.array(array, np.float32)).to(like.device)  # a copy: writable, contiguous


def get_scene_embeddings(audio: torch.Tensor, model: AffectBenchHearModel) -> torch.Tensor:
    """[n_sounds, scene_embedding_size]: the backbone's pooled embedding of each sound."""
    sounds = _sounds(audio, model)
    pooled = [model._scene(e.pooled) for e in _embed(model, list(sounds))]
    return _tensor(np.stack(pooled), audio)


def window_centres_ms(n_samples: int, hop_ms: float) -> np.ndarray:
    """Timestamps every ``hop_ms`` from 0 to the end of a sound of ``n_samples`` (inclusive)."""
    duration_ms = n_samples * 1000.0 / SAMPLE_RATE
    return np.arange(int(np.floor(duration_ms / hop_ms + 1e-9)) + 1) * hop_ms


def get_timestamp_embeddings(audio: torch.Tensor, model: AffectBenchHearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """([n_sounds, n_timestamps, timestamp_embedding_size], timestamps_ms [n_sounds, n_timestamps])."""
    sounds = _sounds(audio, model)
    if model.timestamps == "frames":
        frames = [e.frames for e in _embed(model, list(sounds))]
        counts = sorted({len(f) for f in frames})
        if len(counts) > 1:
            raise BackboneError(f"{model.model_file}: backbone {model.backbone.name!r} gave {counts} frames for sounds "
                                "of one length; HEAR needs one count per batch (use timestamps: windows)")
        stamps = (np.arange(counts[0]) + 0.5) * 1000.0 / model.frame_rate
        emb = np.stack(frames)
    else:
        n = sounds.shape[1]
        stamps = window_centres_ms(n, model.settings.hop_ms)
        half = model.settings.window_ms / 2000.0 * SAMPLE_RATE
        starts = [max(0, round(c / 1000.0 * SAMPLE_RATE - half)) for c in stamps]
        bounds = [(a, max(min(n, round(c / 1000.0 * SAMPLE_RATE + half)), min(n, a + 1)))  # never empty
                  for a, c in zip(starts, stamps)]
        windows = [sound[a:b] for sound in sounds for a, b in bounds]
        pooled = [model._scene(e.pooled) for e in _embed(model, windows)]
        emb = np.stack(pooled).reshape(len(sounds), len(stamps), -1)
    times = np.broadcast_to(stamps.astype(np.float32), emb.shape[:2])
    return _tensor(emb, audio), _tensor(times, audio)
