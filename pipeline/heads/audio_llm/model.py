"""The Audio-LLM: frame features → MLP projector → soft tokens inside a Qwen2.5 chat prompt.

Each token group (``audio``; ``video``, or one group per further store — Emotion-LLaMA's global EVA,
local MAE and temporal VideoMAE tokens — see :mod:`.plan`) has its own
:class:`Projector`: frames are z-scored with statistics of the training frames (buffers, so they
travel in ``projector.pt``), ``downsample`` consecutive frames are stacked into one vector (50 Hz
emotion2vec with k=5 → 10 tokens/s), the sequence is average-pooled down to ``max_tokens`` if
longer, and a two-layer MLP maps each vector to the LLM's hidden size.

The soft tokens replace a placeholder at the start of the user's message, so the sequence is
``<chat prefix> [audio tokens][video tokens]... <instruction> <chat suffix> <answer><eos>`` (groups in
the run item's order) with the
tokenizer's own chat template (a plain ``instruction\\n`` when it has none). Only the answer and its
end-of-sequence token carry labels; everything else is ``-100``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from pipeline.heads.audio_llm.data import Example

PLACEHOLDER = "<<media>>"  # split point in the templated prompt; never reaches the tokenizer
IGNORE = -100


class Projector(nn.Module):
    """Frames [T, D] → soft tokens [N, hidden_size of the LLM]."""

    def __init__(
        self, in_dim: int, out_dim: int, hidden: int = 1024, downsample: int = 1, max_tokens: int | None = None
    ):
        super().__init__()
        self.in_dim, self.out_dim, self.hidden = int(in_dim), int(out_dim), int(hidden)
        self.downsample = max(1, int(downsample))
        self.max_tokens = int(max_tokens) if max_tokens else None
        self.register_buffer("mean", torch.zeros(self.in_dim))
        self.register_buffer("std", torch.ones(self.in_dim))
        self.net = nn.Sequential(
            nn.Linear(self.in_dim * self.downsample, self.hidden), nn.GELU(), nn.Linear(self.hidden, self.out_dim)
        )

    def config(self) -> dict[str, Any]:
        return {
            "in_dim": self.in_dim, "out_dim": self.out_dim, "hidden": self.hidden,
            "downsample": self.downsample, "max_tokens": self.max_tokens,
        }

    def set_normalisation(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def n_tokens(self, n_frames: int) -> int:
        n = -(-n_frames // self.downsample)
        return min(n, self.max_tokens) if self.max_tokens else n

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = (frames.float() - self.mean) / self.std
        if len(x) == 0:
            return x.new_zeros((0, self.out_dim))
        k = self.downsample
        if len(x) % k:  # repeat the last frame so the tail still makes a full stack
            x = torch.cat([x, x[-1:].expand(k - len(x) % k, -1)])
        x = x.reshape(len(x) // k, k * self.in_dim)
        if self.max_tokens and len(x) > self.max_tokens:
            x = nn.functional.adaptive_avg_pool1d(x.T[None], self.max_tokens)[0].T
        return self.net(x)


def save_projectors(path: str | Path, projectors: dict[str, Projector], meta: dict[str, Any] | None = None) -> None:
    """``projector.pt``: per group its constructor config and state dict (plain tensors, no pickled code)."""
    blob = {
        "groups": {g: {"config": p.config(), "state_dict": {k: v.detach().cpu() for k, v in p.state_dict().items()}}
                   for g, p in projectors.items()},
        "meta": meta or {},
    }
    torch.save(blob, path)


def load_projectors(path: str | Path) -> dict[str, Projector]:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    out = {}
    for group, item in blob["groups"].items():
        proj = Projector(**item["config"])
        proj.load_state_dict(item["state_dict"])
        out[group] = proj
    return out


class AudioLLM(nn.Module):
    """A causal LM plus one projector per token group; builds embeddings, loss and answers."""

    def __init__(self, llm, tokenizer, projectors: dict[str, Projector]):
        super().__init__()
        self.llm = llm
        self.tokenizer = tokenizer
        self.projectors = nn.ModuleDict(projectors)
        self._prompt_cache: dict[str, tuple[list[int], list[int]]] = {}

    @property
    def device(self) -> torch.device:
        return next(self.llm.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return self.llm.get_input_embeddings().weight.dtype

    def prompt_ids(self, prompt: str) -> tuple[list[int], list[int]]:
        """Token ids before and after the soft tokens for one instruction."""
        if prompt not in self._prompt_cache:
            content = PLACEHOLDER + prompt
            if getattr(self.tokenizer, "chat_template", None):
                text = self.tokenizer.apply_chat_template(
                    [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
                )
            else:
                text = content + "\n"
            before, after = text.split(PLACEHOLDER, 1)
            enc = lambda s: self.tokenizer(s, add_special_tokens=False)["input_ids"] if s else []  # noqa: E731
            self._prompt_cache[prompt] = (enc(before), enc(after))
        return self._prompt_cache[prompt]

    def answer_ids(self, answer: str) -> list[int]:
        return self.tokenizer(answer, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]

    def soft_tokens(self, feats: dict[str, np.ndarray]) -> list[torch.Tensor]:
        """Soft tokens of every group, in the projectors' order, in the LLM's dtype."""
        return [
            proj(torch.as_tensor(feats[g], device=self.device)).to(self.dtype) for g, proj in self.projectors.items()
        ]

    def assemble(
        self,
        examples: Sequence[Example],
        feats: Sequence[dict[str, np.ndarray]],
        *,
        with_answer: bool,
        left_pad: bool = False,
    ) -> dict[str, torch.Tensor]:
        """``inputs_embeds``, ``attention_mask`` and (with answers) ``labels`` for a batch.

        Training pads on the right; generation pads on the left so every row ends where its
        answer starts.
        """
        embed = self.llm.get_input_embeddings()
        rows, labels = [], []
        for ex, f in zip(examples, feats):
            before, after = self.prompt_ids(ex.prompt)
            tail = after + (self.answer_ids(ex.answer) if with_answer else [])
            ids = lambda x: torch.tensor(x, dtype=torch.long, device=self.device)  # noqa: E731
            parts = [embed(ids(before)), *self.soft_tokens(f), embed(ids(tail))]
            row = torch.cat(parts)
            n_answer = len(tail) - len(after) if with_answer else 0
            rows.append(row)
            labels.append([IGNORE] * (len(row) - n_answer) + tail[len(after):])
        width = max(len(r) for r in rows)
        hidden = rows[0].shape[-1]
        inputs = rows[0].new_zeros((len(rows), width, hidden))
        mask = torch.zeros((len(rows), width), dtype=torch.long, device=self.device)
        target = torch.full((len(rows), width), IGNORE, dtype=torch.long, device=self.device)
        for i, (row, lab) in enumerate(zip(rows, labels)):
            span = slice(width - len(row), width) if left_pad else slice(0, len(row))
            inputs[i, span] = row
            mask[i, span] = 1
            target[i, span] = torch.tensor(lab, dtype=torch.long, device=self.device)
        out = {"inputs_embeds": inputs, "attention_mask": mask}
        if with_answer:
            out["labels"] = target
        return out

    def loss(self, examples: Sequence[Example], feats: Sequence[dict[str, np.ndarray]]) -> torch.Tensor:
        """Mean cross-entropy over answer tokens (the model shifts labels itself)."""
        return self.llm(**self.assemble(examples, feats, with_answer=True)).loss

    @torch.no_grad()
    def generate(
        self, examples: Sequence[Example], feats: Sequence[dict[str, np.ndarray]], max_new_tokens: int = 8
    ) -> list[str]:
        """Greedy answers, decoded without special tokens."""
        from transformers import GenerationConfig

        batch = self.assemble(examples, feats, with_answer=False, left_pad=True)
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        config = GenerationConfig(
            max_new_tokens=int(max_new_tokens), do_sample=False, eos_token_id=tok.eos_token_id, pad_token_id=pad
        )
        out = self.llm.generate(**batch, generation_config=config)
        # With only inputs_embeds, generate returns just the new tokens.
        return [t.strip() for t in tok.batch_decode(out, skip_special_tokens=True)]


def load_llm(model_dir: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """A causal LM and its tokenizer from a local directory (fp32 on CPU, bf16/fp16 on CUDA)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    llm = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device)
    return llm, tokenizer


def build_projectors(dims: dict[str, int], out_dim: int, settings) -> dict[str, Projector]:
    """One projector per token group: ``projector`` for ``audio``, ``video_projector`` (default: as
    ``projector``) for every further group (``video``, or one per further store)."""
    extra = settings.video_projector or settings.projector
    sections = {group: settings.projector if group == "audio" else extra for group in dims}
    return {
        group: Projector(dim, out_dim, hidden=sections[group].hidden, downsample=sections[group].downsample,
                         max_tokens=sections[group].max_tokens)
        for group, dim in dims.items()
    }
