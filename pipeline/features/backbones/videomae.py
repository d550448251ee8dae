"""VideoMAE clip encoder: spatio-temporal features of an utterance's frames.

Weights: any transformers ``VideoMAEModel`` checkpoint with its ``VideoMAEImageProcessor`` — e.g.
``MCG-NJU/videomae-base`` (self-supervised on Kinetics-400; CC-BY-NC-4.0), ``MCG-NJU/videomae-large``,
or facial-expression MAE-DFER-style checkpoints converted to transformers — loaded from ``source``
(a local directory or a hub id already in the local cache; fetch with ``python -m pipeline.tools.models
fetch <name>``). Nothing is downloaded here. ViT-B: D = 768, 12 layers; ViT-L: D = 1024, 24 layers.

A clip is ``config.num_frames`` frames (16 for the released models). The utterance's frames (at the
segment fps) are sampled uniformly — the middle frame of each of ``num_frames`` equal spans, so
utterances with fewer frames repeat frames (counted: ``n_repeated``). Utterances longer than
``max_clip_frames`` frames (default 2 × num_frames) are cut into the fewest equal consecutive chunks
of at most that length, one clip each, and the clips' features are averaged (counted:
``n_multi_clip``) — nothing is truncated. Per clip every hidden state (patch embeddings + each block)
is pooled over its tubelet tokens (``pooling: mean | mean+std | max``) → ``pooled`` [L, D] with
L = num_hidden_layers + 1. There are no per-frame features (a clip's tokens are not the segment's
frames), so ``frames`` is None.

Options: ``face_crop: none | haar | dlib`` + ``face_margin`` (crop each frame's largest face first,
see pipeline/features/faces.py), ``max_clip_frames``, ``clip_batch`` (clips per forward pass, default 4),
``device``, ``precision``. Utterances without frames get zeros and are counted (``n_empty``).

Loading is strict (:mod:`pipeline.features.backbones._loading`): a missing, unexpected or
mis-shaped tensor is an error naming it; the heads of a ``VideoMAEForPreTraining`` /
``...ForVideoClassification`` checkpoint are recorded (``describe()["load_report"]["unused_tensors"]``).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from pydantic import Field

from pipeline.core.runtime import resolve_revision
from pipeline.features.backbones._loading import load_pretrained
from pipeline.features.backbones.base import Backbone, Embedding, ModelSettings, Pooling, pool, register_backbone
from pipeline.features.backbones.clip_vision import check_model_type, chunks, load_image_processor
from pipeline.features.faces import FaceCropSettings


def sample_indices(n: int, k: int) -> np.ndarray:
    """``k`` indices spread uniformly over ``n`` frames (the middle of ``k`` equal spans; repeats if n < k)."""
    return np.minimum(((np.arange(k) + 0.5) * n / k).astype(np.int64), n - 1)


def clip_spans(n: int, max_len: int) -> list[np.ndarray]:
    """Split ``range(n)`` into the fewest equal consecutive chunks of at most ``max_len`` frames."""
    return np.array_split(np.arange(n), max(1, math.ceil(n / max_len)))


class VideoMAESettings(ModelSettings, FaceCropSettings):
    pooling: Pooling = "mean"
    max_clip_frames: int | None = Field(None, ge=1)  # default 2 × the model's num_frames
    clip_batch: int = Field(4, ge=1)  # clips per forward pass


@register_backbone(
    "videomae",
    description="VideoMAE clip features, every layer pooled",
    settings=VideoMAESettings,
    licence="CC-BY-NC-4.0 (MCG-NJU)", weights="`pipeline.tools.models fetch`",
    verified="transformers `VideoMAEImageProcessor` + `VideoMAEModel` on the same frame sampling (1 and 2 clips, "
             "real RAVDESS frames): cos ≥ 0.9999",
    verified_by="tests/test_parity_hf.py::test_videomae_matches_transformers",
)
class VideoMAEBackbone(Backbone):
    modality = "video"
    has_frames = False

    def __init__(self, name: str, settings: VideoMAESettings):
        super().__init__(name, settings)
        import torch
        from transformers import VideoMAEModel

        from pipeline.features.faces import FaceCropper

        self._torch = torch
        self.load_runtime()
        self.cropper = FaceCropper.from_settings(settings)
        self.face_crop = self.cropper.method if self.cropper else "none"
        check_model_type(name, self.model_dir, ("videomae",))
        self.processor = load_image_processor(name, self.model_dir, "VideoMAEImageProcessor")
        # Strict: a tensor that does not fit is an error naming it; pre-training / classification heads
        # beside the model are recorded (unused_tensors). The final layernorm (use_mean_pooling: false)
        # acts on last_hidden_state only, which is never read here (hidden states are).
        self.model, self.load_report = load_pretrained(name, VideoMAEModel, self.model_dir, dtype=self.dtype,
                                                       unused_missing=("layernorm.",))
        self.model.to(self.device).eval()
        self.config = self.model.config
        self.num_frames = int(self.config.num_frames)
        self.max_clip_frames = settings.max_clip_frames or 2 * self.num_frames
        self.clip_batch = settings.clip_batch
        self.n_empty = 0
        self.n_repeated = 0
        self.n_multi_clip = 0
        self.n_clips = 0

    def _forward(self, clips: list[list[np.ndarray]]) -> np.ndarray:
        """Hidden states pooled over tokens, [N, L, D], for ``num_frames``-frame clips."""
        torch = self._torch
        pixels = self.processor(clips, return_tensors="pt")["pixel_values"].to(self.device, self.dtype)
        with torch.inference_mode():
            out = self.model(pixel_values=pixels, output_hidden_states=True)
        states = torch.stack(out.hidden_states, dim=1).float().cpu().numpy()  # [N, L, tokens, D]
        return pool(states, self.pooling)

    def _clips(self, frames: np.ndarray) -> list[list[np.ndarray]]:
        images = self.cropper.crop_all(frames) if self.cropper else list(frames)
        spans = clip_spans(len(images), self.max_clip_frames)
        self.n_multi_clip += len(spans) > 1
        self.n_repeated += len(images) < self.num_frames
        return [[images[span[i]] for i in sample_indices(len(span), self.num_frames)] for span in spans]

    def embed(self, batch: Sequence[np.ndarray]) -> list[Embedding]:
        # Clips of all utterances in the batch are encoded together, then averaged per utterance.
        clips, owner = [], []
        for i, frames in enumerate(batch):
            if len(frames) == 0:
                self.n_empty += 1
                continue
            for clip in self._clips(frames):
                clips.append(clip)
                owner.append(i)
        self.n_clips += len(clips)
        feats = [self._forward(clips[part]) for part in chunks(len(clips), self.clip_batch)]
        feats = np.concatenate(feats) if feats else np.zeros((0, 0, 0), np.float32)
        owner = np.asarray(owner, np.int64)
        n_layers = self.config.num_hidden_layers + 1
        dim = self.config.hidden_size * (2 if self.pooling == "mean+std" else 1)
        results = []
        for i in range(len(batch)):
            mine = feats[owner == i]
            pooled = mine.mean(axis=0) if len(mine) else np.zeros((n_layers, dim), np.float32)
            results.append(Embedding(pooled.astype(np.float32)))
        return results

    def describe(self) -> dict[str, Any]:
        info = {
            "source": self.settings.source,
            "revision": resolve_revision(self.model_dir),
            "frame_rate": None,
            "model_type": self.config.model_type,
            "num_frames": self.num_frames,
            "tubelet_size": self.config.tubelet_size,
            "image_size": self.config.image_size,
            "max_clip_frames": self.max_clip_frames,
            "face_crop": self.face_crop,
            "n_clips": self.n_clips,
            "n_multi_clip": self.n_multi_clip,
            "n_repeated": self.n_repeated,
            "n_empty": self.n_empty,
            "load_report": self.load_report,
        }
        if self.cropper:
            info.update(self.cropper.stats())
        return info
