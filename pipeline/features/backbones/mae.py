"""MAE (masked-autoencoder ViT) image encoder on every frame's face crop, masking disabled.

Emotion-LLaMA's *local* visual tokens are MAE features of face crops (MER2023's baseline extractor).
Weights: any transformers ``ViTMAEModel`` / ``ViTMAEForPreTraining`` checkpoint with its image
processor — e.g. ``facebook/vit-mae-base`` / ``-large`` (CC-BY-NC-4.0) or a face-trained MAE converted to
transformers — loaded from ``source`` (a local directory or a hub id already in the local cache; fetch
with ``python -m pipeline.tools.models fetch <name>``). Nothing is downloaded here.

**Masking off, patch order kept.** ``ViTMAEModel`` always runs ``random_masking``: it keeps
``int(n * (1 - mask_ratio))`` patches *in the order of an argsort of random noise*. With the published
configs' ``mask_ratio: 0.75`` three quarters of the face would be dropped at random, so the model is
loaded with ``mask_ratio: 0`` (recorded in ``describe()``); and since transformers 5 still shuffles all
patches even then, we pass ``noise = arange(n)`` so the argsort is the identity: the encoder sees every
patch, in raster order, deterministically (``tests/test_parity_hf.py`` checks both against
transformers' own shuffled output un-shuffled with its ``ids_restore``).

Per frame, every hidden state (embeddings + each of the ``num_hidden_layers`` blocks) is summarised by
its CLS token (``token: cls``) or the mean of its patch tokens (``token: mean``, default: what MAE
fine-tuning and MER2023's extractor use, global average pooling); those are pooled over the utterance's
frames (``pooling: mean | mean+std | max``) → ``pooled`` [L, D], L = num_hidden_layers + 1. ``frames``
[T, D] is one vector per frame from the final (layer-normed) ``last_hidden_state``, summarised the same
way: the per-frame local tokens of the Audio-LLM.

Options: ``face_crop: none | haar | dlib`` (default ``haar``: crop the largest face first, see
pipeline/features/faces.py; frames without a face use the whole frame and are counted), ``face_margin``,
``token``, ``pooling``, ``frame_batch`` (frames per forward pass, default 64), ``device``, ``precision``.
Utterances without frames get zeros and are counted (``n_empty``).

Loading is strict (:mod:`pipeline.features.backbones._loading`): a missing, unexpected or mis-shaped
tensor is an error naming it; a ``ViTMAEForPreTraining`` checkpoint's decoder lies beside the encoder
and is recorded (``describe()["load_report"]["unused_tensors"]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from pipeline.core.runtime import resolve_revision
from pipeline.features.backbones._loading import load_pretrained
from pipeline.features.backbones.base import Embedding, ModelSettings, Pooling, register_backbone
from pipeline.features.backbones.clip_vision import PerFrameBackbone, check_model_type, load_image_processor
from pipeline.features.faces import FaceCropSettings


class MAESettings(ModelSettings, FaceCropSettings):
    face_crop: Literal["none", "haar", "dlib"] = "haar"  # MAE local tokens are face features
    token: Literal["cls", "mean"] = "mean"  # per-frame summary of each hidden state: CLS or mean of patch tokens
    pooling: Pooling = "mean"
    frame_batch: int = Field(64, ge=1)  # frames per forward pass


def keep_order_noise(torch, batch: int, n_patches: int, device) -> Any:
    """Noise whose argsort is the identity: ViTMAE's random_masking then keeps every patch in raster order."""
    return torch.arange(n_patches, dtype=torch.float32, device=device).expand(batch, n_patches)


@register_backbone(
    "mae", description="MAE ViT (ViTMAEModel, masking off, patch order kept) per face crop, every layer pooled",
    settings=MAESettings, licence="CC-BY-NC-4.0 (facebook/vit-mae-*); that of the checkpoint",
    weights="`pipeline.tools.models fetch`",
    verified="transformers `ViTImageProcessor` + `ViTMAEModel` (mask_ratio 0) per real RAVDESS face crop: every "
             "hidden state's CLS / patch mean and the frame vectors cos ≥ 0.9999, equal frame counts; patch "
             "order = transformers' shuffled output un-shuffled by its `ids_restore`",
    verified_by="tests/test_parity_hf.py::test_mae_matches_transformers",
)
class MAEBackbone(PerFrameBackbone):
    def __init__(self, name: str, settings: MAESettings):
        super().__init__(name, settings)
        import torch
        from transformers import ViTMAEModel

        self._torch = torch
        self.load_runtime()
        self.init_frames(settings)
        check_model_type(name, self.model_dir, ("vit_mae",))
        self.processor = load_image_processor(name, self.model_dir, "ViTImageProcessor")
        # mask_ratio 0: every patch is kept (the published configs say 0.75, for pre-training)
        self.model, self.load_report = load_pretrained(name, ViTMAEModel, self.model_dir, dtype=self.dtype,
                                                       mask_ratio=0.0)
        self.model.to(self.device).eval()
        self.config = self.model.config
        self.n_patches = (self.config.image_size // self.config.patch_size) ** 2

    def _forward(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame layer summaries [N, L, D] and frame vectors [N, D] for a list of RGB images."""
        torch = self._torch
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"].to(self.device, self.dtype)
        noise = keep_order_noise(torch, len(pixels), self.n_patches, self.device)
        with torch.inference_mode():
            out = self.model(pixel_values=pixels, noise=noise, output_hidden_states=True)
        states = torch.stack(out.hidden_states, dim=1)  # [N, L, 1 + patches, D]
        last = out.last_hidden_state  # final layernorm applied
        if self.token == "cls":
            summary, vectors = states[:, :, 0], last[:, 0]
        else:
            summary, vectors = states[:, :, 1:].mean(dim=2), last[:, 1:].mean(dim=1)
        return summary.float().cpu().numpy(), vectors.float().cpu().numpy()

    def embed(self, batch: Sequence[np.ndarray]) -> list[Embedding]:
        dim = self.config.hidden_size
        return self.pooled_and_frames(batch, self._forward, self.config.num_hidden_layers + 1, dim, dim)

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.settings.source,
            "revision": resolve_revision(self.model_dir),
            "frame_rate": None,  # the segment fps; filled in by the embed driver
            "model_type": self.config.model_type,
            "image_size": self.config.image_size,
            "mask_ratio": float(self.config.mask_ratio),
            "patch_order": "raster (identity noise)",
            "token": self.token,
            "frame_dims": self.config.hidden_size,
            **self.frame_info(),
        }
