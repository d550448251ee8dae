"""Generic transformers audio encoder (wav2vec2, HuBERT, WavLM, data2vec-audio, Whisper encoder, ...).

Driven by the checkpoint's ``config.json``: ``AutoFeatureExtractor`` + ``AutoModel`` loaded with
``from_pretrained`` from ``source`` (a local directory, or a hub id already in the local cache — this
code never downloads). Every hidden state is pooled over time, so ``pooled`` is [L, D] with
L = num_hidden_layers + 1; the frames of ``frame_layer`` (default: last) are kept as frame features.
Inputs longer than ``window_seconds`` are cut into consecutive windows whose frames are concatenated
(no silent truncation); inputs shorter than ``min_seconds`` are zero-padded and counted.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from pipeline.backbones import register_backbone
from pipeline.backbones.base import (
    Backbone,
    Embedding,
    pool,
    resolve_device,
    resolve_revision,
    resolve_source,
    torch_dtype,
)

SAMPLE_RATE = 16000


@register_backbone("hf_audio")
class HFAudioBackbone(Backbone):
    modality = "audio"
    has_frames = True

    def __init__(self, name: str, cfg: dict[str, Any]):
        super().__init__(name, cfg)
        import torch
        from transformers import AutoFeatureExtractor, AutoModel

        self._torch = torch
        self.model_dir = resolve_source(name, cfg.get("source", ""))
        self.device = resolve_device(cfg.get("device", "auto"))
        self.dtype = torch_dtype(self.device, cfg.get("precision", "auto"))
        self.pooling = cfg.get("pooling", "mean")
        self.frame_layer = int(cfg.get("frame_layer", -1))
        self.window = int(float(cfg.get("window_seconds", 30)) * SAMPLE_RATE)
        self.min_samples = int(float(cfg.get("min_seconds", 0.1)) * SAMPLE_RATE)
        self.extractor = AutoFeatureExtractor.from_pretrained(self.model_dir)
        model = AutoModel.from_pretrained(self.model_dir, dtype=self.dtype)
        # Encoder-decoder checkpoints (Whisper): only the audio encoder is needed for embeddings.
        self.model = model.get_encoder() if getattr(model.config, "is_encoder_decoder", False) else model
        self.model.to(self.device).eval()
        self.config = model.config
        self.n_padded = 0
        self.n_windowed = 0

    def _forward(self, audio: np.ndarray) -> np.ndarray:
        """Hidden states [L, T, D] for one window."""
        torch = self._torch
        inputs = self.extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        for key in ("input_values", "input_features"):
            if key in inputs:
                inputs[key] = inputs[key].to(self.dtype)
        with torch.inference_mode():
            out = self.model(**inputs, output_hidden_states=True)
        return torch.stack(out.hidden_states, dim=0)[:, 0].float().cpu().numpy()

    def embed(self, batch: Sequence[np.ndarray]) -> list[Embedding]:
        results = []
        for audio in batch:
            if len(audio) < self.min_samples:
                audio = np.pad(audio, (0, self.min_samples - len(audio)))
                self.n_padded += 1
            n_windows = max(1, math.ceil(len(audio) / self.window))
            self.n_windowed += n_windows > 1
            states = np.concatenate(
                [self._forward(audio[i * self.window : (i + 1) * self.window]) for i in range(n_windows)],
                axis=1,
            )
            results.append(Embedding(pool(states, self.pooling).astype(np.float32), states[self.frame_layer]))
        return results

    def frame_rate(self) -> float | None:
        strides = getattr(self.config, "conv_stride", None)
        if strides:
            return SAMPLE_RATE / float(np.prod(strides))
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.cfg.get("source"),
            "revision": resolve_revision(self.model_dir),
            "frame_rate": self.frame_rate(),
            "model_type": self.config.model_type,
            "frame_layer": self.frame_layer,
            "n_padded": self.n_padded,
            "n_windowed": self.n_windowed,
        }
