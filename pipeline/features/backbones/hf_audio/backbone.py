"""The ``hf_audio`` backbone type: settings, windowing, batching and pooling over a model family.

The family (:mod:`.families`) knows how to load and run its model; this driver cuts inputs into
windows no longer than the family allows, groups windows into forward passes of at most
``batch_seconds`` of padded audio (one window at a time where padding would change the real
frames), stitches each input's frames back together and pools every hidden state.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
from pydantic import Field

from pipeline.core.audio import SAMPLE_RATE, even_windows, group_by_seconds, pad_to, seconds_to_samples
from pipeline.core.errors import BackboneError
from pipeline.core.runtime import resolve_revision
from pipeline.features.backbones.base import Backbone, Embedding, ModelSettings, Pooling, pool, register_backbone
from pipeline.features.backbones.hf_audio.families import SUPPORTED_TYPES, family_for


class HFAudioSettings(ModelSettings):
    pooling: Pooling = "mean"
    frame_layer: int = -1  # which hidden state becomes the frame features (default: the last)
    window_seconds: float = Field(30, gt=0)  # longer inputs are windowed, never truncated
    min_seconds: float = Field(0.1, ge=0)  # shorter inputs are zero-padded (and counted)
    batch_seconds: float = Field(120, ge=0)  # padded audio per forward pass
    ast_pooling: Literal["tokens", "cls"] = "tokens"  # AST: pool patch-token columns, or CLS + distillation
    mean: float | None = None  # AST: spectrogram normalisation (compute on your training split)
    std: float | None = None


@register_backbone(
    "hf_audio",
    description="transformers audio encoders: wav2vec2, HuBERT, WavLM, data2vec, Whisper, Qwen2-Audio tower, AST",
    settings=HFAudioSettings, licence="that of the checkpoint", weights="`pipeline.tools.models fetch`",
    verified="transformers per item: feature extractor + `model(output_hidden_states=True)` (wav2vec2, HuBERT, "
             "WavLM, data2vec), Whisper encoder on the 30-s log-mel trimmed to ⌈n/320⌉ (and per 30-s window), "
             "AST, Qwen2-Audio tower as `Qwen2AudioForConditionalGeneration` feeds its LM: cos ≥ 0.9999 per "
             "layer and frame, equal frame counts",
    verified_by="tests/test_parity_hf.py::test_ssl_matches_transformers"
)
class HFAudioBackbone(Backbone):
    modality = "audio"
    has_frames = True

    def __init__(self, name: str, settings: HFAudioSettings):
        super().__init__(name, settings)
        from transformers import AutoConfig

        self.load_runtime()
        self.frame_layer = settings.frame_layer
        self.batch_samples = seconds_to_samples(settings.batch_seconds)
        self.ast_pooling = settings.ast_pooling
        try:
            self.config = AutoConfig.from_pretrained(self.model_dir)
        except Exception as err:  # noqa: BLE001 - unknown/garbled config: say which backbone and dir
            raise BackboneError(f"backbones.{name}: cannot read config.json in {self.model_dir}: {err}") from err
        try:
            family_cls = family_for(self.config.model_type)
        except KeyError:
            raise BackboneError(
                f"backbones.{name}: model_type {self.config.model_type!r} is not supported by hf_audio "
                f"(supported: {', '.join(SUPPORTED_TYPES)})"
            ) from None
        defaults = type(settings).model_fields
        ast_only = [k for k in ("ast_pooling", "mean", "std") if getattr(settings, k) != defaults[k].default]
        if ast_only and family_cls.name != "ast":
            raise BackboneError(
                f"backbones.{name}: {', '.join(ast_only)} apply to AST checkpoints only; "
                f"{self.model_dir} is {self.config.model_type!r}"
            )
        self.n_padded = 0
        self.n_windowed = 0
        self.load_info: dict[str, Any] = {}
        self.family = family_cls(self)
        self.model, self.extractor = self.family.model, self.family.extractor
        if self.extractor.sampling_rate != SAMPLE_RATE:
            raise BackboneError(
                f"backbones.{name}: the feature extractor expects {self.extractor.sampling_rate} Hz; inputs are 16 kHz"
            )
        self.model.to(self.device).eval()
        self.window = min(seconds_to_samples(settings.window_seconds), self.family.max_window)
        self.min_samples = max(seconds_to_samples(settings.min_seconds), self.family.model_min_samples)

    def embed(self, batch: Sequence[np.ndarray]) -> list[Embedding]:
        family = self.family
        windows: list[np.ndarray] = []
        owner: list[int] = []
        for idx, audio in enumerate(batch):
            audio, padded = pad_to(audio, self.min_samples)
            self.n_padded += padded
            parts = even_windows(audio, self.window, align=family.samples_per_frame)
            self.n_windowed += len(parts) > 1
            windows += parts
            owner += [idx] * len(parts)

        budget = 0 if family.padding_problem else self.batch_samples  # 0: every window on its own
        results: list[Any] = [None] * len(windows)
        for group in group_by_seconds([len(w) for w in windows], budget, family.fixed_samples):
            for i, result in zip(group, family.run([windows[i] for i in group])):
                results[i] = result

        out = []
        for idx in range(len(batch)):
            mine = [i for i, o in enumerate(owner) if o == idx]
            frames = np.concatenate([results[i][0] for i in mine], axis=1)  # [L, T, D]
            if results[mine[0]][1] is not None:  # AST summary tokens: length-weighted mean over windows
                weights = [len(windows[i]) for i in mine]
                pooled = np.average(np.stack([results[i][1] for i in mine]), axis=0, weights=weights)
            else:
                pooled = pool(frames, self.pooling)
            out.append(Embedding(np.asarray(pooled, np.float32), frames[self.frame_layer].astype(np.float32)))
        return out

    def frame_rate(self) -> float:
        return SAMPLE_RATE / self.family.samples_per_frame

    def describe(self) -> dict[str, Any]:
        family = self.family
        return {
            "source": self.settings.source,
            "revision": resolve_revision(self.model_dir),
            "frame_rate": self.frame_rate(),
            "model_type": self.config.model_type,
            "n_layers": family.n_layers,
            "hidden_size": family.hidden_size,
            "family": family.name,
            "pooling": "cls+distillation" if family.name == "ast" and self.ast_pooling == "cls" else self.pooling,
            "frame_layer": self.frame_layer,
            "window_seconds": self.window / SAMPLE_RATE,
            "batching": f"per item: {family.padding_problem}" if family.padding_problem else "padded batches",
            "dtype": str(self.dtype).replace("torch.", ""),
            "n_padded": self.n_padded,
            "n_windowed": self.n_windowed,
            **self.load_info,
            **family.describe(),
        }
