"""CLIP image encoder applied to every video frame (optionally to the face crop only).

Weights: any transformers CLIP checkpoint — a full ``CLIPModel`` (e.g. ``openai/clip-vit-base-patch32``,
``openai/clip-vit-large-patch14``: MIT licence; LAION ``laion/CLIP-ViT-*`` OpenCLIP conversions: MIT)
or a vision-only ``CLIPVisionModel(WithProjection)`` — loaded with ``CLIPVisionModelWithProjection``
and ``CLIPImageProcessor`` from ``source`` (a local directory or a hub id already in the local cache;
fetch with ``python -m pipeline.tools.models fetch <name>``). Nothing is downloaded here.

Per frame, every hidden state (embeddings + each of the ``num_hidden_layers`` blocks) is summarised
by its CLS token (``token: cls``, default) or the mean of its patch tokens (``token: mean``); those are
pooled over the utterance's frames (``pooling: mean | mean+std | max``) → ``pooled`` [L, D] with
L = num_hidden_layers + 1, D = hidden_size (768 for ViT-B, 1024 for ViT-L).

``frames`` [T, D'] is one vector per frame: the **projected** image embedding (CLIP's joint
image–text space, D' = projection_dim: 512 for ViT-B/32, 768 for ViT-L/14) when the checkpoint has
``visual_projection`` weights, else the **pooled output** (post-layernorm CLS, D' = hidden_size);
``describe()['frame_features']`` says which (``frame_features: pooled`` forces the latter).

Options: ``face_crop: none | haar | dlib`` (crop the largest face first, see pipeline/features/faces.py; frames
without a face use the whole frame and are counted), ``face_margin`` (default 0.2 of the box on each
side), ``token``, ``pooling``, ``frame_features: auto | projected | pooled``, ``frame_batch`` (frames per
forward pass, default 64), ``device: auto | cpu | cuda``, ``precision``. Utterances without frames
(audio-only items of a mixed corpus) get zeros and are counted (``n_empty``).

Loading is strict (:mod:`pipeline.features.backbones._loading`): a missing, unexpected or
mis-shaped tensor is an error naming it. Two cases are expected and recorded instead: a full
``CLIPModel``'s text tower (``unused_tensors``: ``text_model``, ``text_projection``, ``logit_scale``)
and a vision-only checkpoint's missing ``visual_projection`` (``not_loaded``; frames are then the
pooled output), in ``describe()["load_report"]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence

import numpy as np
from pydantic import Field

from pipeline.core.errors import BackboneError
from pipeline.core.runtime import resolve_revision
from pipeline.features.backbones._loading import load_pretrained
from pipeline.features.backbones.base import Backbone, Embedding, ModelSettings, Pooling, pool, register_backbone
from pipeline.features.faces import FaceCropSettings


def load_image_processor(name: str, model_dir: Path, class_name: str):
    """``<class_name>`` from ``model_dir``, preferring its PIL backend.

    transformers 5 defaults to torchvision-based processors, and torchvision must not be installed
    here (it breaks the CPU torch stack); the ``...Pil`` classes are the same preprocessing without it.
    """
    import transformers

    if not (model_dir / "preprocessor_config.json").exists():
        raise BackboneError(
            f"backbones.{name}: {model_dir} has no preprocessor_config.json; save the image processor "
            f"next to the model ({class_name}.save_pretrained) or fetch the full hub repository"
        )
    cls = getattr(transformers, f"{class_name}Pil", None) or getattr(transformers, class_name)
    return cls.from_pretrained(model_dir)


def check_model_type(name: str, model_dir: Path, allowed: tuple[str, ...]) -> None:
    """Fail early, naming the backbone, when ``source`` holds another kind of checkpoint.

    transformers would otherwise load e.g. a VideoMAE directory into a CLIP class with random weights
    and only a warning.
    """
    config = model_dir / "config.json"
    if not config.exists():
        raise BackboneError(f"backbones.{name}: {model_dir} has no config.json (not a transformers checkpoint)")
    model_type = json.loads(config.read_text()).get("model_type")
    if model_type not in allowed:
        raise BackboneError(
            f"backbones.{name}: {model_dir} holds a {model_type!r} checkpoint; "
            f"this backbone type needs one of {allowed}"
        )


def chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


class PerFrameBackbone(Backbone):
    """What the per-frame image towers (``clip_vision``, ``mae``, ``eva_clip``) share: the optional face
    crop, every frame of a batch through the model together in ``frame_batch`` chunks (a few short
    utterances still fill a GPU batch) and split back per utterance, utterances without frames counted
    (``n_empty``), and the describe() keys that say so."""

    modality = "video"
    has_frames = True

    def init_frames(self, settings: Any) -> None:
        from pipeline.features.faces import FaceCropper

        self.token = settings.token
        self.frame_batch = settings.frame_batch
        self.cropper = FaceCropper.from_settings(settings)
        self.face_crop = self.cropper.method if self.cropper else "none"
        self.n_empty = 0

    def run_frames(self, batch: Sequence[np.ndarray], forward: Callable[[list], tuple[np.ndarray, ...]],
                   empty: Sequence[tuple[int, ...]]) -> tuple[tuple[np.ndarray, ...], list[tuple[int, int]]]:
        """``forward``'s outputs over all (cropped) frames of ``batch``, concatenated (``empty``: their
        shapes when the batch has no frame at all), and each utterance's ``(start, stop)`` frame range."""
        images = [img for frames in batch for img in (self.cropper.crop_all(frames) if self.cropper else frames)]
        parts = [forward(images[part]) for part in chunks(len(images), self.frame_batch)]
        outs = tuple(np.concatenate([p[i] for p in parts]) if parts else np.zeros(shape, np.float32)
                     for i, shape in enumerate(empty))
        spans, start = [], 0
        for frames in batch:
            spans.append((start, start + len(frames)))
            self.n_empty += not len(frames)
            start += len(frames)
        return outs, spans

    def pooled_and_frames(self, batch: Sequence[np.ndarray], forward: Callable[[list], tuple[np.ndarray, np.ndarray]],
                          n_layers: int, dim: int, frame_dim: int) -> list[Embedding]:
        """The common case: ``forward`` gives per-frame layer summaries [N, L, D] and frame vectors [N, D'];
        each utterance's pooled layers and its frame vectors."""
        (summary, vectors), spans = self.run_frames(batch, forward, [(0, n_layers, dim), (0, frame_dim)])
        return [Embedding(pool(summary[a:b].transpose(1, 0, 2), self.pooling).astype(np.float32), vectors[a:b])
                for a, b in spans]

    def frame_info(self) -> dict[str, Any]:
        """describe() keys of every per-frame tower: face crop (and its counts), empty utterances, loading."""
        info = {"face_crop": self.face_crop, "n_empty": self.n_empty, "load_report": self.load_report}
        if self.cropper:
            info.update(self.cropper.stats())
        return info


class ClipVisionSettings(ModelSettings, FaceCropSettings):
    token: Literal["cls", "mean"] = "cls"  # per-frame summary of each hidden state: CLS or mean of patch tokens
    pooling: Pooling = "mean"
    frame_features: Literal["auto", "projected", "pooled"] = "auto"
    frame_batch: int = Field(64, ge=1)  # frames per forward pass


@register_backbone(
    "clip_vision", description="CLIP image encoder per frame (optional face crop), every layer pooled",
    settings=ClipVisionSettings, licence="MIT (OpenAI CLIP)", weights="`pipeline.tools.models fetch`",
    verified="transformers `CLIPImageProcessor` + `get_image_features` / vision `pooler_output` per real RAVDESS "
             "frame: cos ≥ 0.9999, equal frame counts",
    verified_by="tests/test_parity_hf.py::test_clip_vision_matches_transformers",
)
class ClipVisionBackbone(PerFrameBackbone):
    def __init__(self, name: str, settings: ClipVisionSettings):
        super().__init__(name, settings)
        import torch
        from transformers import CLIPVisionModelWithProjection

        self._torch = torch
        self.load_runtime()
        self.init_frames(settings)
        check_model_type(name, self.model_dir, ("clip", "clip_vision_model"))
        self.processor = load_image_processor(name, self.model_dir, "CLIPImageProcessor")
        # Strict: a tensor that does not fit is an error naming it. A full CLIPModel's text tower lies
        # beside the vision model (recorded as unused_tensors); a vision-only CLIPVisionModel
        # checkpoint has no projection (not_loaded): its head stays random and is never used.
        model, self.load_report = load_pretrained(
            name, CLIPVisionModelWithProjection, self.model_dir, dtype=self.dtype,
            unused_missing=("visual_projection.",),
        )
        self.model = model.to(self.device).eval()
        self.config = model.config
        has_projection = not any(k.startswith("visual_projection") for k in self.load_report.get("not_loaded", []))
        wanted = settings.frame_features
        if wanted == "projected" and not has_projection:
            raise BackboneError(
                f"backbones.{name}: frame_features: projected, but {self.model_dir} has no visual_projection "
                f"weights (a vision-only checkpoint); use frame_features: pooled or a full CLIP checkpoint"
            )
        self.frame_features = "pooled" if wanted == "pooled" or not has_projection else "projected"

    def _forward(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame layer summaries [N, L, D] and frame vectors [N, D'] for a list of RGB images."""
        torch = self._torch
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        pixels = pixels.to(self.device, self.dtype)
        with torch.inference_mode():
            out = self.model.vision_model(pixel_values=pixels, output_hidden_states=True)
            states = torch.stack(out.hidden_states, dim=1)  # [N, L, 1 + patches, D]
            summary = states[:, :, 0] if self.token == "cls" else states[:, :, 1:].mean(dim=2)
            vectors = out.pooler_output
            if self.frame_features == "projected":
                vectors = self.model.visual_projection(vectors)
        return summary.float().cpu().numpy(), vectors.float().cpu().numpy()

    def frame_dim(self) -> int:
        return self.config.projection_dim if self.frame_features == "projected" else self.config.hidden_size

    def embed(self, batch: Sequence[np.ndarray]) -> list[Embedding]:
        return self.pooled_and_frames(batch, self._forward, self.config.num_hidden_layers + 1,
                                      self.config.hidden_size, self.frame_dim())

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.settings.source,
            "revision": resolve_revision(self.model_dir),
            "frame_rate": None,  # the segment fps; filled in by the embed driver
            "model_type": self.config.model_type,
            "image_size": self.config.image_size,
            "token": self.token,
            "frame_features": self.frame_features,
            "frame_dims": self.frame_dim(),
            **self.frame_info(),
        }
