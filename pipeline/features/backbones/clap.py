"""CLAP audio–text embeddings with transformers ``ClapModel`` + ``ClapProcessor``.

Weights, either:

* ``source: <dir or hub id in the local cache>`` — a transformers CLAP checkpoint (e.g.
  ``laion/clap-htsat-fused``, ``laion/clap-htsat-unfused``, ``laion/larger_clap_general``;
  Apache-2.0 on the hub); or
* ``checkpoint: <file.pt>`` — a LAION-CLAP training checkpoint (``630k-audioset-fusion-best.pt``,
  Audio Flamingo 2's AF-CLAP ``epoch_16.pt``, ...) converted on load by
  :mod:`pipeline.features.backbones.laion_clap`, plus ``config:`` (a dir/hub id holding a CLAP
  ``config.json``, or an inline dict of ``ClapConfig`` arguments) and ``processor:`` (dir/hub id with
  ``preprocessor_config.json`` and, for text prompts, the RoBERTa tokenizer; defaults to ``config``
  when that is a directory). ``strict: false`` loads a checkpoint that does not fully fit (warns,
  and ``describe()["conversion"]`` lists every unexpected/missing tensor); ``trust_checkpoint:
  true`` allows full unpickling of a ``.pt`` that ``weights_only`` loading rejects.

Audio: the 16 kHz inputs are resampled to the feature extractor's rate (48 kHz for LAION CLAP) with
``scipy.signal.resample_poly`` (polyphase FIR, Kaiser window β = 5; exact for the integer 16→48 kHz
ratio), then quantised to the int16 grid as LAION's own ``get_audio_embedding_from_data`` does.
Inputs longer than ``window_seconds`` (default: the extractor's ``max_length_s``, 10 s) are cut into
near-equal windows, each ≤ 10 s, so the extractor never takes random crops; window embeddings are
averaged with length weights (projection: re-normalised). Every window is padded to 10 s
("repeatpad"), so batches (``batch_seconds``, default 120) are exact. The extractor marks one
random input per batch as "longer" when none is (a training trick); here ``is_longer`` is always
false, which is LAION's own inference path for ≤ 10 s clips and keeps results deterministic.

``pooled`` (no frames) by ``output``:
``projection`` (default) — ``get_audio_features``: the L2-normalised joint audio–text embedding
(``projection_dim``, 512); ``encoder`` — the audio encoder's pooled output before projection
(HTS-AT: 768 for tiny/base-width, 2048 for HTSAT-large as in AF-CLAP — what Audio Flamingo 2 feeds
its LM); ``both`` — the two concatenated, projection first (``describe()["pooled_layout"]``).

Zero-shot: :meth:`ClapBackbone.text_embeddings` embeds prompts; :meth:`ClapBackbone.zero_shot`
scores audio (or stored ``pooled`` embeddings) against prompts with :func:`zero_shot_scores`.

Params example::

    backbones:
      clap_fused: {type: clap, source: laion/clap-htsat-fused}
      clap_630k:
        type: clap
        checkpoint: models/pretrained/laion_clap/630k-audioset-fusion-best.pt
        config: laion/clap-htsat-fused          # config.json + processor of the same architecture
      afclap:                                    # AF-CLAP: HTS-AT large, fusion, 16 kHz front end
        type: clap
        checkpoint: models/pretrained/afclap/epoch_16.pt
        config: {audio_config: {patch_embeds_hidden_size: 256, depths: [2, 2, 12, 2], hidden_size: 2048,
                                enable_fusion: true}}
        processor: laion/clap-htsat-fused
        feature_extractor: {sampling_rate: 16000, hop_length: 160, frequency_min: 50, frequency_max: 8000}
        output: encoder
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import Field, model_validator

from pipeline.core.audio import SAMPLE_RATE, even_windows, group_by_seconds, pad_to, seconds_to_samples
from pipeline.core.errors import BackboneError
from pipeline.core.runtime import resolve_device, resolve_revision, resolve_source, torch_dtype
from pipeline.features.backbones.base import (
    Backbone,
    BackboneSettings,
    Device,
    Embedding,
    FetchSettings,
    Precision,
    register_backbone,
)


class ClapSettings(BackboneSettings, FetchSettings):
    source: str | None = None  # a transformers CLAP checkpoint (dir or cached hub id)
    checkpoint: str | None = None  # or a LAION-CLAP training checkpoint (.pt), converted on load
    config: str | dict[str, Any] | None = None  # checkpoint: CLAP config dir/hub id, or ClapConfig arguments
    processor: str | None = None  # checkpoint: dir with preprocessor_config.json (+ tokenizer); default config
    feature_extractor: dict[str, Any] = Field(default_factory=dict)  # ClapFeatureExtractor overrides
    output: Literal["projection", "encoder", "both"] = "projection"
    strict: bool = True  # checkpoint: unexpected/missing/mis-shaped tensors are errors
    trust_checkpoint: bool = False  # allow full unpickling of a .pt that weights_only loading rejects
    # checkpoint: the text branch. auto: map a RoBERTa one, skip (and record) any other, e.g. AF-CLAP's
    # T5; roberta: always map (a T5 branch is then an error); skip: audio only. Skipped → no zero-shot.
    text_tower: Literal["auto", "roberta", "skip"] = "auto"
    window_seconds: float | None = Field(None, gt=0)  # default: the extractor's max_length_s (10 s)
    min_seconds: float = Field(0.1, ge=0)
    batch_seconds: float = Field(120, ge=0)  # padded audio per forward pass
    device: Device = "auto"
    precision: Precision = "auto"

    @model_validator(mode="after")
    def _one_source(self) -> "ClapSettings":
        if bool(self.source) == bool(self.checkpoint):
            raise ValueError("give 'source' (transformers CLAP dir) or 'checkpoint' (+ 'config'), not both or neither")
        if self.checkpoint and not self.config:
            raise ValueError("'checkpoint' needs 'config' (a CLAP config dir or a dict)")
        return self


# ClapConfig text_config for a checkpoint whose text tower is skipped (never run: zero-shot is refused)
_PLACEHOLDER_TEXT_CONFIG = {"vocab_size": 8, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1,
                            "intermediate_size": 8, "max_position_embeddings": 16}


def zero_shot_scores(audio: np.ndarray, text: np.ndarray, logit_scale: float) -> np.ndarray:
    """Class probabilities [N, P]: softmax over prompts of ``logit_scale`` × cosine similarity."""
    audio = audio / np.linalg.norm(audio, axis=-1, keepdims=True)
    text = text / np.linalg.norm(text, axis=-1, keepdims=True)
    logits = logit_scale * audio @ text.T
    logits -= logits.max(axis=-1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(axis=-1, keepdims=True)


def resample(audio: np.ndarray, rate: int) -> np.ndarray:
    """16 kHz → ``rate`` with scipy's polyphase resampler (identity when the rates match)."""
    if rate == SAMPLE_RATE:
        return audio
    from scipy.signal import resample_poly

    g = math.gcd(rate, SAMPLE_RATE)
    return resample_poly(audio, rate // g, SAMPLE_RATE // g).astype(np.float32)


@register_backbone(
    "clap",
    description="CLAP audio embeddings (ClapModel; LAION-CLAP / AF-CLAP .pt converted), zero-shot prompts",
    settings=ClapSettings, licence="Apache-2.0 (laion/clap-*); checkpoints: see their pages",
    weights="`pipeline.tools.models fetch` or the LAION/AF2 .pt",
)
class ClapBackbone(Backbone):
    modality = "audio"
    has_frames = False

    def __init__(self, name: str, settings: ClapSettings):
        super().__init__(name, settings)
        import torch

        self._torch = torch
        self.device = resolve_device(settings.device)
        self.dtype = torch_dtype(self.device, settings.precision)
        self.output = settings.output
        self.conversion: dict[str, Any] | None = None
        self.text_ready = True
        if settings.checkpoint:
            self._load_checkpoint(settings)
        else:
            from transformers import ClapModel

            self.model_dir = resolve_source(name, settings.source)
            self.processor_dir = self.model_dir
            self.model = ClapModel.from_pretrained(self.model_dir, dtype=self.dtype)
            self.revision = resolve_revision(self.model_dir)
        self.model.to(self.device).eval()
        self.extractor = self._load_extractor(settings.feature_extractor)
        self.rate = int(self.extractor.sampling_rate)
        # every window is padded to the extractor's max_length_s: that is also its cost in a batch
        self.max_window = int(self.extractor.max_length_s * SAMPLE_RATE)
        window = settings.window_seconds or float(self.extractor.max_length_s)
        self.window = min(seconds_to_samples(window), self.max_window)
        self.min_samples = seconds_to_samples(settings.min_seconds)
        self.batch_samples = seconds_to_samples(settings.batch_seconds)
        self._processor = None
        self.n_padded = 0
        self.n_windowed = 0

    # -- loading ---------------------------------------------------------------------------------

    def _load_checkpoint(self, settings: ClapSettings) -> None:
        from transformers import ClapConfig, ClapModel

        from pipeline.core.runtime import file_digest
        from pipeline.features.backbones.laion_clap import convert_into, read_checkpoint, text_branch_kind

        name = self.name
        config = settings.config
        self.model_dir = Path(settings.checkpoint)
        state = read_checkpoint(self.model_dir, trust=settings.trust_checkpoint)
        kind = text_branch_kind(state)
        skip_text = settings.text_tower == "skip" or (settings.text_tower == "auto" and kind != "roberta")
        if isinstance(config, dict):
            if skip_text:  # the text model stays unused: a one-layer placeholder, not a random RoBERTa-base
                config = {**config, "text_config": {**(config.get("text_config") or {}), **_PLACEHOLDER_TEXT_CONFIG}}
            clap_config = ClapConfig(**config)
            config_dir = None
        else:
            config_dir = resolve_source(name, str(config))
            clap_config = ClapConfig.from_pretrained(config_dir)
        processor = settings.processor
        self.processor_dir = resolve_source(name, str(processor)) if processor else config_dir
        if self.processor_dir is None:
            raise BackboneError(
                f"backbones.{name}: give 'processor' (a dir with the CLAP preprocessor_config.json and "
                "tokenizer, e.g. the laion/clap-htsat-fused snapshot)"
            )
        model = ClapModel(clap_config)
        strict = settings.strict
        result = convert_into(model, state, strict=strict, where=f"backbones.{name}: ", text_tower=settings.text_tower)
        self.conversion = result.report()
        # a text tower with random weights (skipped, or missing tensors) must not produce "zero-shot" scores
        self.text_ready = result.text_tower["status"] == "mapped" and not any(
            k.startswith(("text_model.", "text_projection.")) for k in result.missing
        )
        self.model = model.to(self.dtype)
        self.revision = file_digest(self.model_dir)

    def _load_extractor(self, overrides: dict[str, Any]):
        from transformers import ClapFeatureExtractor

        try:
            return ClapFeatureExtractor.from_pretrained(self.processor_dir, **overrides)
        except Exception as err:  # noqa: BLE001
            raise BackboneError(
                f"backbones.{self.name}: no CLAP preprocessor_config.json in {self.processor_dir} ({err})"
            ) from err

    @property
    def processor(self):
        """``ClapProcessor`` (feature extractor + RoBERTa tokenizer), built on first text use: audio
        embedding needs no tokenizer, so checkpoints without one still embed audio."""
        if self._processor is None:
            from transformers import AutoTokenizer, ClapProcessor

            try:
                tokenizer = AutoTokenizer.from_pretrained(self.processor_dir)
            except Exception as err:  # noqa: BLE001
                raise BackboneError(
                    f"backbones.{self.name}: no tokenizer in {self.processor_dir} for text prompts ({err})"
                ) from err
            self._processor = ClapProcessor(feature_extractor=self.extractor, tokenizer=tokenizer)
        return self._processor

    # -- audio -----------------------------------------------------------------------------------

    def _forward(self, windows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(normalised projection [B, P], encoder pooled output [B, H]) for windows ≤ max_length_s."""
        torch = self._torch
        waves = []
        for w in windows:
            w = resample(w, self.rate)
            waves.append((np.clip(w, -1.0, 1.0) * 32767.0).astype(np.int16).astype(np.float32) / 32767.0)
        inputs = self.extractor(waves, sampling_rate=self.rate, return_tensors="pt")
        features = inputs["input_features"].to(self.device, self.dtype)
        is_longer = torch.zeros((len(waves), 1), dtype=torch.bool, device=self.device)
        with torch.inference_mode():
            # the two steps of ClapModel.get_audio_features, keeping the encoder output as well
            encoded = self.model.audio_model(input_features=features, is_longer=is_longer).pooler_output
            projected = torch.nn.functional.normalize(self.model.audio_projection(encoded), dim=-1)
        return projected.float().cpu().numpy(), encoded.float().cpu().numpy()

    def embed(self, batch: Sequence[np.ndarray]) -> list[Embedding]:
        windows, owner = [], []
        for idx, audio in enumerate(batch):
            audio, padded = pad_to(audio, self.min_samples)
            self.n_padded += padded
            parts = even_windows(audio, self.window)
            self.n_windowed += len(parts) > 1
            windows += parts
            owner += [idx] * len(parts)
        proj = np.zeros((len(windows), self.model.config.projection_dim), np.float32)
        enc = np.zeros((len(windows), self.model.config.audio_config.hidden_size), np.float32)
        for group in group_by_seconds([len(w) for w in windows], self.batch_samples, self.max_window):
            proj[group], enc[group] = self._forward([windows[i] for i in group])
        owner = np.array(owner)
        lengths = np.array([len(w) for w in windows], np.float64)
        out = []
        for idx in range(len(batch)):
            mine = owner == idx
            p = np.average(proj[mine], axis=0, weights=lengths[mine])
            p /= np.linalg.norm(p)
            e = np.average(enc[mine], axis=0, weights=lengths[mine])
            pooled = {"projection": p, "encoder": e, "both": np.concatenate([p, e])}[self.output]
            out.append(Embedding(pooled.astype(np.float32)))
        return out

    # -- text and zero-shot ----------------------------------------------------------------------

    def text_embeddings(self, prompts: Sequence[str]) -> np.ndarray:
        """L2-normalised joint-space embeddings [P, projection_dim] of text prompts."""
        if not self.text_ready:
            raise BackboneError(f"backbones.{self.name}: the checkpoint's text tower did not load: {self.conversion}")
        torch = self._torch
        # LAION tokenises with max_length 77 (RoBERTa positions beyond are unused in training)
        tokens = self.processor(text=list(prompts), padding=True, truncation=True, max_length=77, return_tensors="pt")
        tokens = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
        with torch.inference_mode():
            text = self.model.get_text_features(**tokens).pooler_output  # already normalised
        return text.float().cpu().numpy()

    def projection_part(self, pooled: np.ndarray) -> np.ndarray:
        """The joint-space slice of stored ``pooled`` embeddings ([N, D] or [D])."""
        if self.output == "encoder":
            raise BackboneError(f"backbones.{self.name}: output 'encoder' has no joint embedding for zero-shot")
        return pooled[..., : self.model.config.projection_dim]

    def zero_shot(self, audio: Sequence[np.ndarray] | np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        """Probabilities [N, P] of each prompt for each input: ``audio`` is a list of 16 kHz waveforms
        or an [N, D] array of this backbone's ``pooled`` embeddings."""
        if isinstance(audio, np.ndarray) and audio.ndim == 2:
            emb = audio
        else:
            emb = np.stack([e.pooled for e in self.embed(audio)])
        scale = float(self.model.logit_scale_a.detach().exp())  # audio→text logits use the audio scale
        return zero_shot_scores(self.projection_part(emb), self.text_embeddings(prompts), scale)

    def describe(self) -> dict[str, Any]:
        p, h = self.model.config.projection_dim, self.model.config.audio_config.hidden_size
        layout = {"projection": {"projection": [0, p]}, "encoder": {"encoder": [0, h]},
                  "both": {"projection": [0, p], "encoder": [p, p + h]}}[self.output]
        return {
            "source": self.settings.source or self.settings.checkpoint,
            "revision": self.revision,
            "frame_rate": None,
            "model_type": "clap",
            "output": self.output,
            "pooled_layout": layout,
            "fusion": bool(self.model.config.audio_config.enable_fusion),
            "sampling_rate": self.rate,
            "resampler": "none" if self.rate == SAMPLE_RATE else
            f"scipy.signal.resample_poly 16000->{self.rate} Hz (Kaiser beta=5), int16 quantised",
            "window_seconds": self.window / SAMPLE_RATE,
            "dtype": str(self.dtype).replace("torch.", ""),
            "n_padded": self.n_padded,
            "n_windowed": self.n_windowed,
            "text_tower": "loaded" if self.text_ready else "missing (zero-shot disabled)",
            **({"conversion": self.conversion} if self.conversion is not None else {}),
        }
