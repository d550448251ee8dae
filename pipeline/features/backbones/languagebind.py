"""LanguageBind's text, video and audio towers, re-implemented on transformers 5 (no ``languagebind`` package).

Weights: LanguageBind's published checkpoints (``LanguageBind/LanguageBind_Video_FT``,
``LanguageBind/LanguageBind_Audio_FT``, the LoRA-tuned ``LanguageBind_Video`` / ``_Audio``; MIT licence),
fetched with ``python -m pipeline.tools.models fetch <name>``. Each checkpoint is a whole
``LanguageBindVideo`` / ``LanguageBindAudio`` (``config.json`` with ``model_type`` ``LanguageBindVideo`` /
``LanguageBindAudio``, ``pytorch_model.bin`` or ``model.safetensors``, sharded or not, and CLIP's
``vocab.json`` + ``merges.txt``): its text tower, one vision-style tower, their projections and
``logit_scale``. The ``languagebind`` package itself needs transformers<5 (it imports CLIP's
``_expand_mask``); here the same modules are built from transformers 5 pieces and the checkpoint's own
key names are loaded directly:

* **text** (``languagebind_text``): ``text_model.*`` + ``text_projection`` into
  ``CLIPTextModelWithProjection`` (same layout); pooled at the highest token id, as LanguageBind's
  ``CLIPTextTransformer`` does. Either checkpoint's text tower (they are the same frozen CLIP text
  encoder in the FT releases).
* **video** (``languagebind_video``): a CLIP ViT whose every encoder layer first adds
  ``temporal_embedding`` and runs ``temporal_attn`` (pre-LN ``temporal_layer_norm1``, residual) across
  the ``num_frames`` frames of each patch position, then the usual spatial block (``add_time_attn``,
  ``clip_type: vl``). Pooled output: post-LN CLS per frame, averaged over frames, then
  ``visual_projection``.
* **audio** (``languagebind_audio``): a CLIP ViT on a 3-channel fbank "image" [3, num_mel_bins,
  target_length] whose position embedding holds the non-square patch grid (LanguageBind resizes it at
  build time, so checkpoints store it resized); ``add_time_attn`` adds a temporal MLP block as well.

Loading is strict: every checkpoint tensor of the tower must fit and every module tensor must be
loaded, or :class:`~pipeline.core.errors.BackboneError` lists the missing, unexpected and mis-shaped
ones. Tolerated and recorded in ``describe()["load_report"]``: the other tower of the checkpoint
(``unused_tensors``) and the ``position_ids`` buffers (aranges, rebuilt). LoRA checkpoints
(``lora_r > 0``: PEFT names ``encoder.base_model.model.…``, ``lora_A/B.<adapter>``, ``base_layer``)
are merged on load, ``W + B·A·lora_alpha/lora_r`` (recorded: ``lora_merged``).

Preprocessing is LanguageBind's own, re-done without torchvision/torchaudio:

* text: CLIP tokenizer (``CLIPTokenizer`` from the checkpoint's ``vocab.json``/``merges.txt``), at most
  ``max_length`` (77) tokens, truncated as theirs (``truncation=True``).
* video: ``num_frames`` (8) frames at ``np.linspace(0, n - 1, num_frames, dtype=int)`` of the segment's
  frames (fewer frames repeat), /255, OpenAI CLIP mean/std, short side scaled to 224 (bilinear,
  ``align_corners=False``, as pytorchvideo's ``ShortSideScale``), centre crop 224. LanguageBind's
  processor also applies ``RandomHorizontalFlipVideo(p=0.5)`` at inference; that random flip is left
  out (stores must be deterministic). ``frames`` [num_frames, P] are the per-frame projected CLS
  vectors (their mean is ``pooled``); ``frame_rate`` says "8 per utterance (linspace)", not a rate. Utterances without frames get zeros (``n_empty``).
* audio (16 kHz): DC removed, Kaldi fbank (kaldi-native-fbank: 25 ms Hann windows every 10 ms,
  ``num_mel_bins`` mels, no dither), shorter than ``target_length`` frames → repeated to fill
  (``n_repeated``); longer → three ``target_length`` crops whose starts are drawn from the front,
  middle and back thirds by ``np.random.RandomState(crop_seed)`` per item (LanguageBind draws them
  from the global numpy RNG), stacked as the 3 channels (``n_long``); equal → the mel thrice;
  then ``(x - audio_mean) / (2 audio_std)``. Inputs under one window (400 samples) are zero-padded to
  it first (``n_padded``; LanguageBind's own code fails on them).

``pooled`` [P] is the projected embedding (``get_text_features`` / ``get_image_features``; P = 768 for
the ViT-L releases), L2-normalised when ``normalize: true`` (as ``LanguageBind.forward``). Options:
``max_length`` (text), ``crop_seed`` (audio), ``normalize``, ``batch_size``, ``device``, ``precision``.
Not supported (an error naming it): ``clip_type: vl_new`` (the 3-D patch embedding).

The towers, the checkpoint reading and the preprocessing are in :mod:`pipeline.models.languagebind`, shared
with the ``lora_multimodal`` fine-tuning head (which trains LoRA adapters on these same towers).
"""


from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

from pipeline.models.languagebind import (  # noqa: F401 - re-exported: the towers' helpers, where they used to live
    TEXT_PREFIXES,
    VISION_PREFIXES,
    audio_image,
    build_vision_tower,
    kaldi_fbank,
    load_strict,
    load_text_tower,
    load_vision_tower,
    merge_lora,
    read_config,
    read_state_dict,
    sample_frame_ids,
    text_features,
    text_inputs,
    video_pixels,
)
from pipeline.core.runtime import resolve_revision
from pipeline.features.backbones.base import Backbone, Embedding, ModelSettings, register_backbone

# --- backbones -----------------------------------------------------------------------------------------


class LanguageBindSettings(ModelSettings):
    normalize: bool = False  # L2-normalise the projected embedding (LanguageBind.forward does)


class LanguageBindTextSettings(LanguageBindSettings):
    max_length: int = Field(77, ge=2)  # CLIP's context length


class LanguageBindAudioSettings(LanguageBindSettings):
    crop_seed: int = 0  # RandomState seed (per item) for the three crops of inputs over target_length frames


class _LanguageBindBase(Backbone):
    def describe(self) -> dict[str, Any]:
        return {"source": self.settings.source, "revision": resolve_revision(self.model_dir), "frame_rate": None,
                "model_type": self.config.get("model_type"), "normalize": self.settings.normalize,
                "load_report": self.load_report}

    def _finish(self, vectors):
        torch = self._torch
        if self.settings.normalize:
            vectors = torch.nn.functional.normalize(vectors.float(), dim=-1)
        return vectors.float().cpu().numpy()


@register_backbone(
    "languagebind_text", description="LanguageBind text tower (CLIP text encoder + projection) of a Video/Audio checkpoint",
    settings=LanguageBindTextSettings, licence="MIT (LanguageBind)", weights="`pipeline.tools.models fetch`",
    verified="LanguageBind's own `get_text_features` (its modelling code, transformers 4.30) with its tokenizer, "
             "tiny random towers saved by its `save_pretrained`: cos ≥ 0.9999, equal token ids",
    verified_by="tests/test_parity_languagebind.py::test_text_matches_languagebind",
)
class LanguageBindTextBackbone(_LanguageBindBase):
    modality = "text"

    def __init__(self, name: str, settings: LanguageBindTextSettings):
        super().__init__(name, settings)
        import torch

        self._torch = torch
        self.load_runtime()
        model, self.tokenizer, self.config, self.load_report = load_text_tower(name, self.model_dir)
        self.model = model.to(self.device, self.dtype).eval()

    def embed(self, batch: Sequence[str]) -> list[Embedding]:
        torch = self._torch
        enc = {k: v.to(self.device) for k, v in text_inputs(self.tokenizer, batch, self.settings.max_length).items()}
        with torch.inference_mode():
            vectors = self._finish(text_features(self.model, **enc))
        return [Embedding(v) for v in vectors]


class _VisionTowerBackbone(_LanguageBindBase):
    def _build(self, name: str) -> None:
        import torch

        self._torch = torch
        self.load_runtime()
        tower, self.config, self.load_report = load_vision_tower(name, self.model_dir, self.modality)
        self.vision = self.config["vision_config"]
        self.tower = tower.to(self.device, self.dtype).eval()

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update({k: self.vision.get(k) for k in ("num_frames", "add_time_attn", "lora_r", "patch_size",
                                                     "num_mel_bins", "target_length")})
        return info


@register_backbone(
    "languagebind_video", description="LanguageBind video tower (CLIP ViT + temporal attention), 8 frames",
    settings=LanguageBindSettings, licence="MIT (LanguageBind)", weights="`pipeline.tools.models fetch`",
    verified="LanguageBind's own video transform (linspace frames, OpenAI norm, ShortSideScale, CenterCrop; "
             "random flip removed) + `get_image_features` on real RAVDESS frames, full and LoRA checkpoints saved "
             "by its code: cos ≥ 0.9999 (embedding, every frame, every layer), equal frame counts",
    verified_by="tests/test_parity_languagebind.py::test_video_matches_languagebind",
)
class LanguageBindVideoBackbone(_VisionTowerBackbone):
    modality = "video"
    has_frames = True

    def __init__(self, name: str, settings: LanguageBindSettings):
        super().__init__(name, settings)
        self._build(name)
        self.num_frames = int(self.vision.get("num_frames", 8))
        self.n_empty = 0
        self.n_repeated = 0

    def forward(self, frames_list: Sequence[np.ndarray]):
        """(embeddings [N, P], per-frame [N, num_frames, P], hidden states) for non-empty frame stacks."""
        torch = self._torch
        pixels = torch.stack([video_pixels(f, self.num_frames, int(self.vision["image_size"])) for f in frames_list])
        with torch.inference_mode():
            return self.tower(pixels.to(self.device, self.dtype))

    def embed(self, batch: Sequence[np.ndarray]) -> list[Embedding]:
        present = [i for i, f in enumerate(batch) if len(f)]
        dim = self.tower.visual_projection.out_features
        results = [Embedding(np.zeros(dim, np.float32), np.zeros((0, dim), np.float32)) for _ in batch]
        self.n_empty += len(batch) - len(present)
        self.n_repeated += sum(0 < len(f) < self.num_frames for f in batch)
        if present:
            emb, per_frame, _ = self.forward([batch[i] for i in present])
            emb, per_frame = self._finish(emb), self._finish(per_frame)
            for row, i in enumerate(present):
                results[i] = Embedding(emb[row], per_frame[row])
        return results

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        # not a rate: the frames are num_frames spread over each utterance, whatever its length (the
        # embed driver would otherwise record the segment fps)
        info["frame_rate"] = f"{self.num_frames} per utterance (linspace)"
        info.update({"frame_dims": self.tower.visual_projection.out_features, "flip": False,
                     "n_empty": self.n_empty, "n_repeated": self.n_repeated})
        return info


@register_backbone(
    "languagebind_audio", description="LanguageBind audio tower (CLIP ViT on a 3-channel Kaldi-fbank image)",
    settings=LanguageBindAudioSettings, licence="MIT (LanguageBind)", weights="`pipeline.tools.models fetch`",
    verified="LanguageBind's own `AudioTransform` (torchaudio Kaldi fbank, repeat / three-crop paths) + "
             "`get_image_features` on real EmoDB audio (and a 12-s concatenation), full and LoRA checkpoints saved "
             "by its code: cos ≥ 0.9999",
    verified_by="tests/test_parity_languagebind.py::test_audio_matches_languagebind",
)
class LanguageBindAudioBackbone(_VisionTowerBackbone):
    modality = "audio"

    def __init__(self, name: str, settings: LanguageBindAudioSettings):
        super().__init__(name, settings)
        self._build(name)
        self.n_repeated = 0
        self.n_padded = 0
        self.n_long = 0

    def embed(self, batch: Sequence[np.ndarray]) -> list[Embedding]:
        torch = self._torch
        images = []
        for wave in batch:
            image, path = audio_image(np.asarray(wave), self.vision, self.settings.crop_seed)
            self.n_repeated += path in ("repeated", "padded")
            self.n_padded += path == "padded"
            self.n_long += path == "long"
            images.append(image)
        with torch.inference_mode():
            emb, _, _ = self.tower(torch.from_numpy(np.stack(images)).to(self.device, self.dtype))
        return [Embedding(v) for v in self._finish(emb)]

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update({"crop_seed": self.settings.crop_seed, "n_repeated": self.n_repeated, "n_padded": self.n_padded,
                     "n_long": self.n_long})
        return info
