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
``soxr`` at ``soxr_hq`` quality — what ``librosa.load(f, sr=48000)`` does in LAION's documented
``get_audio_embedding_from_filelist`` (scipy's ``resample_poly`` moved the log-mel by up to 6 dB above
7.5 kHz) — then quantised to the int16 grid as LAION's ``get_audio_embedding_from_data`` does. The
log-mel follows the model: fusion models take the extractor's ``truncation="fusion"`` features (HTK
mel, as LAION's ``get_mel``), non-fusion ones ``rand_trunc`` (Slaney mel, as HTS-AT's own front end),
whatever the processor's ``preprocessor_config.json`` says. Inputs up to ``max_length_s`` (10 s) are
padded by repetition ("repeatpad"), LAION's path for short clips (``is_longer`` false).

Longer inputs, fusion models (``enable_fusion``; e.g. ``630k-audioset-fusion-best.pt``, AF-CLAP): the
model's own long-input path, as LAION's ``get_audio_features(data_truncating="fusion")`` builds it:
the log-mel of the whole input shrunk to 10 s (bilinear with antialiasing, as LAION's
``torchvision.transforms.Resize``) as the global view, plus three 10-s local crops, one from each third
of the valid start frames, with ``is_longer`` true so that the AFF block fuses them. The crops are
drawn as LAION and transformers' ``ClapFeatureExtractor`` draw them (``np.random.choice`` over each
third), but from a fresh ``np.random.RandomState(crop_seed)`` per input (default 0) rather than the
global generator: deterministic per item, batch-independent, and equal to LAION's output when
``np.random.seed(crop_seed)`` is called before each item. Non-fusion models (and fusion ones given an
explicit ``window_seconds``): inputs are cut into near-equal windows, each ≤ ``window_seconds``
(default 10 s), whose embeddings are averaged with length weights (projection: re-normalised) — LAION
itself takes one random 10-s crop there. Every window is padded to 10 s, so batches
(``batch_seconds``, default 120) are exact. The extractor's training trick of marking one random
input per batch as "longer" is not used: ``is_longer`` is true exactly for fusion inputs > 10 s.

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
from pydantic import Field, field_validator, model_validator

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


ROBERTA_LAYER_NORM_EPS = 1e-5  # roberta-base's config.json; ClapTextConfig defaults to 1e-12


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
    crop_seed: int = 0  # fusion models, inputs > 10 s: np.random.RandomState(crop_seed) per item picks the crops
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

    @field_validator("config")
    @classmethod
    def _roberta_eps(cls, config: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        """An inline ``config`` dict: the text tower's LayerNorm eps defaults to RoBERTa's 1e-5 (LAION's
        ``roberta-base`` text branch), not ``ClapTextConfig``'s 1e-12; a config dir keeps its own value."""
        if isinstance(config, dict):
            text = dict(config.get("text_config") or {})
            text.setdefault("layer_norm_eps", ROBERTA_LAYER_NORM_EPS)
            config = {**config, "text_config": text}
        return config


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
    """16 kHz → ``rate`` as ``librosa.resample(res_type="soxr_hq")`` does it (identity at 16 kHz):
    ``soxr.resample`` at ``soxr_hq`` quality, length fixed to ceil(n × rate / 16000)."""
    if rate == SAMPLE_RATE:
        return audio
    import soxr

    out = soxr.resample(np.asarray(audio, np.float32), SAMPLE_RATE, rate, quality="soxr_hq")
    n = math.ceil(len(audio) * rate / SAMPLE_RATE)
    return np.pad(out, (0, max(0, n - len(out))))[:n].astype(np.float32)


@register_backbone(
    "clap",
    description="CLAP audio embeddings (ClapModel; LAION-CLAP / AF-CLAP .pt converted), zero-shot prompts",
    settings=ClapSettings, licence="Apache-2.0 (laion/clap-*); checkpoints: see their pages",
    weights="`pipeline.tools.models fetch` or the LAION/AF2 .pt",
    verified="laion_clap `get_audio_embedding_from_filelist` (HTSAT-tiny fusion and non-fusion, fusion inputs "
             "> 10 s, text tower) and AF2's AF-CLAP code (audio), run once in a throw-away venv, committed "
             "goldens: cos ≥ 0.9999",
    verified_by="tests/test_parity_clap.py::test_short_utterances_match_laion",
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
        self.fusion = bool(self.model.config.audio_config.enable_fusion)
        # fusion models take inputs > 10 s whole, through their is_longer path, unless windows are asked for
        self.fuse_long = self.fusion and settings.window_seconds is None
        self.crop_seed = settings.crop_seed
        self._processor = None
        self.n_padded = 0
        self.n_windowed = 0
        self.n_fused = 0

    # -- loading ---------------------------------------------------------------------------------

    def _load_checkpoint(self, settings: ClapSettings) -> None:
        from transformers import ClapConfig, ClapModel

        from pipeline.core.runtime import file_digest
        from pipeline.features.backbones.laion_clap import convert_into, read_checkpoint, text_tower_plan

        name = self.name
        config = settings.config
        self.model_dir = Path(settings.checkpoint)
        state = read_checkpoint(self.model_dir, trust=settings.trust_checkpoint)
        _, skip_text = text_tower_plan(state, settings.text_tower)
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

    def _long_fusion_mel(self, wave: np.ndarray) -> tuple[np.ndarray, bool]:
        """[4, frames, mels] fusion input of a 48-kHz wave > max_length_s, and its ``is_longer``: the
        global view (whole log-mel shrunk to 10 s) and three 10-s crops, as LAION's
        ``get_audio_features(data_truncating="fusion")`` builds them (module docstring: the crops)."""
        torch, ex = self._torch, self.extractor
        mel = ex._np_extract_fbank_features(wave, ex.mel_filters)  # [frames, mels], HTK mel as LAION's get_mel
        chunk = ex.nb_max_samples // ex.hop_length + 1
        total = mel.shape[0]
        if chunk == total:  # longer than 10 s by less than a hop: LAION uses the whole mel, not "longer"
            return np.stack([mel] * 4), False
        ranges = np.array_split(np.arange(total - chunk + 1), 3)
        ranges = [r if len(r) else np.array([0]) for r in ranges]
        rng = np.random.RandomState(self.crop_seed)
        starts = [int(rng.choice(r)) for r in ranges]
        shrunk = torch.nn.functional.interpolate(
            torch.from_numpy(np.ascontiguousarray(mel, np.float32))[None, None], size=[chunk, mel.shape[1]],
            mode="bilinear", align_corners=False, antialias=True,
        )[0, 0].numpy()
        return np.stack([shrunk] + [mel[i : i + chunk] for i in starts]), True

    def _forward(self, windows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(normalised projection [B, P], encoder pooled output [B, H]) for 16 kHz windows: ≤ max_length_s,
        or longer for fusion models (their is_longer path)."""
        torch = self._torch
        waves = []
        for w in windows:
            w = resample(w, self.rate)
            waves.append((np.clip(w, -1.0, 1.0) * 32767.0).astype(np.int16).astype(np.float32) / 32767.0)
        max_len = self.extractor.nb_max_samples
        long = [i for i, w in enumerate(waves) if len(w) > max_len]
        if long and not self.fusion:
            raise BackboneError(f"backbones.{self.name}: non-fusion input over {max_len} samples (window it)")
        features: list[np.ndarray | None] = [None] * len(waves)
        is_longer = [False] * len(waves)
        for i in long:
            features[i], is_longer[i] = self._long_fusion_mel(waves[i])
        long_set = set(long)
        short = [i for i in range(len(waves)) if i not in long_set]
        if short:
            inputs = self.extractor(
                [waves[i] for i in short], sampling_rate=self.rate, return_tensors="np",
                truncation="fusion" if self.fusion else "rand_trunc", padding="repeatpad",
            )
            for i, f in zip(short, inputs["input_features"]):
                features[i] = f
        batch = torch.from_numpy(np.stack(features).astype(np.float32)).to(self.device, self.dtype)
        longer = torch.tensor(is_longer, dtype=torch.bool, device=self.device)[:, None]
        with torch.inference_mode():
            # the two steps of ClapModel.get_audio_features, keeping the encoder output as well
            encoded = self.model.audio_model(input_features=batch, is_longer=longer).pooler_output
            projected = torch.nn.functional.normalize(self.model.audio_projection(encoded), dim=-1)
        return projected.float().cpu().numpy(), encoded.float().cpu().numpy()

    def embed(self, batch: Sequence[np.ndarray]) -> list[Embedding]:
        windows, owner = [], []
        for idx, audio in enumerate(batch):
            audio, padded = pad_to(audio, self.min_samples)
            self.n_padded += padded
            if self.fuse_long:
                parts = [audio]
                self.n_fused += len(audio) > self.max_window
            else:
                parts = even_windows(audio, self.window)
                self.n_windowed += len(parts) > 1
            windows += parts
            owner += [idx] * len(parts)
        proj = np.zeros((len(windows), self.model.config.projection_dim), np.float32)
        enc = np.zeros((len(windows), self.model.config.audio_config.hidden_size), np.float32)
        # every input costs one 10-s forward pass (long fusion inputs too: global view + crops)
        costs = [min(len(w), self.max_window) for w in windows]
        for group in group_by_seconds(costs, self.batch_samples, self.max_window):
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
            "fusion": self.fusion,
            "long_inputs": f"fusion is_longer path (global view + 3 crops, RandomState({self.crop_seed}) per item)"
            if self.fuse_long else "windows averaged",
            "sampling_rate": self.rate,
            "resampler": "none" if self.rate == SAMPLE_RATE else
            f"soxr soxr_hq 16000->{self.rate} Hz (as librosa.load), int16 quantised",
            "window_seconds": None if self.fuse_long else self.window / SAMPLE_RATE,
            "dtype": str(self.dtype).replace("torch.", ""),
            "n_padded": self.n_padded,
            "n_windowed": self.n_windowed,
            "n_fused": self.n_fused,
            "text_tower": "loaded" if self.text_ready else "missing (zero-shot disabled)",
            **({"conversion": self.conversion} if self.conversion is not None else {}),
        }
