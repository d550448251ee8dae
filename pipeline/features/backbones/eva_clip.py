"""EVA-CLIP ViT-g/14, the vision tower of BLIP-2 / MiniGPT-v2 / Emotion-LLaMA (their *global* visual tokens).

transformers has no EVA class and timm / open_clip pull torchvision (which breaks this stack), so the
tower is implemented here, with the module and tensor names of the original
``minigpt4/models/eva_vit.py`` (MiniGPT-4 / MiniGPT-v2; Emotion-LLaMA ships the same file unchanged,
itself LAVIS's BLIP-2 copy of EVA's code), so that its published checkpoint ``eva_vit_g.pth``
(``https://storage.googleapis.com/sfr-vision-language-research/LAVIS/models/BLIP2/eva_vit_g.pth``, what
``create_eva_vit_g`` downloads) loads by name, strictly.

**Which EVA.** MiniGPT-v2 uses EVA-CLIP's *EVA01-g/14* image tower (``create_eva_vit_g``): 39 pre-norm
blocks of width 1408, 16 heads of 88, an MLP of ``int(1408 × 4.3637) = 6144`` with plain GELU (**no
SwiGLU**), **no rotary** embedding and no relative position bias (``use_rel_pos_bias`` off) but a learned
absolute ``pos_embed`` plus a CLS token, **no layer scale** (``init_values`` None: no ``gamma_1/2``),
q/v biases only (``q_bias``, ``v_bias``; k has none), LayerNorm eps 1e-6, and **no final norm** (the
tower's ``norm``/``fc_norm``/``head`` are commented out: it returns the last block's output). MiniGPT-v2
then applies its own ``ln_vision`` (a LayerNorm, eps 1e-5, computed in fp32) to *all tokens of the last
block* and feeds the LLM the CLS token (Emotion-LLaMA's ``cls_tk_llama_proj``) and the 1024 patch tokens
merged four-by-four into 256 tokens of 4 × 1408 (``llama_proj``). It runs at ``image_size: 448``: the
224-px checkpoint's 16 × 16 position grid is resized to 32 × 32 by ``interpolate_pos_embed`` (bicubic,
``align_corners=False``), done here the same way. The later EVA-02 towers (rotary, SwiGLU, sub-LN) are a
different model and are refused (their extra tensors are unexpected keys).

``ln_vision`` is not in ``eva_vit_g.pth``. MiniGPT-v2 builds it fresh and freezes it (so it stays
weight 1, bias 0, and its checkpoints carry no ``ln_vision``); ``ln_vision: auto`` (default) loads
``ln_vision.weight/bias`` when the checkpoint has them (e.g. a BLIP-2 / MiniGPT-4 merge) and otherwise uses
that unit LayerNorm (recorded: ``describe()["load_report"]["ln_vision"]``); ``checkpoint`` requires them,
``none`` skips it.

Preprocessing is MiniGPT-v2's ``Blip2ImageEvalProcessor``: resize to ``image_size`` × ``image_size``
(PIL bicubic, what torchvision's ``Resize`` calls on PIL images), scale to [0, 1], normalise with OpenAI
CLIP's mean/std.

Outputs per utterance: every hidden state (patch embedding + position, then each block) summarised per
frame by its CLS token (``token: cls``, default) or the mean of its patch tokens (``token: mean``) and pooled
over frames (``pooling``) → ``pooled`` [L, D], L = depth + 1, D = 1408. ``frames``:
``frame_features: cls`` (default) → [T, D], the ``ln_vision``-normed CLS token of the last block per
frame (MiniGPT-v2's global token); ``frame_features: patches`` → Emotion-LLaMA's layout for the
utterance's *first* frame (its ``extract_frame`` reads frame 0): the ``ln_vision``-normed patch tokens
merged in fours, [P/4, 4D] (256 × 5632 at 448 px).

Fetch: ``python -m pipeline.tools.models fetch eva_clip_g`` downloads that file (``hub: url:<the URL>`` in
params.yaml; its sha256 becomes the revision). Options: ``source`` (a directory holding ``checkpoint``,
default ``eva_vit_g.pth``; a ``torch.save`` state
dict, optionally under ``model`` / ``state_dict`` and / or with a ``visual_encoder.`` prefix as in full
BLIP-2 / MiniGPT checkpoints), ``image_size`` (448), ``num_heads`` (default width // 88, EVA-g's rule),
``layer_norm_eps`` (1e-6), ``ln_vision``, ``token``, ``frame_features``, ``pooling``, ``face_crop`` (default
``none``: MiniGPT-v2 sees the whole frame) + ``face_margin``, ``frame_batch``, ``device``, ``precision``.
The tower's geometry (width, depth, patch size, MLP width, q/v biases, layer scale) is read from the
checkpoint's tensor shapes.

Loading is strict: a missing, unexpected or mis-shaped tensor is an error listing them (before any
embedding). Golden parity against the original ``eva_vit.py`` run in a throw-away venv:
``tests/golden/eva_clip/`` (its README says how it was made).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from pipeline.core.errors import BackboneError
from pipeline.features.backbones.base import Embedding, ModelSettings, Pooling, pool, register_backbone
from pipeline.features.backbones.clip_vision import PerFrameBackbone
from pipeline.features.faces import FaceCropSettings

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # Blip2ImageEvalProcessor's defaults (OpenAI CLIP)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
EVA_G_HEAD_DIM = 88  # create_eva_vit_g: num_heads = 1408 // 88
LN_VISION_EPS = 1e-5  # MiniGPT's LayerNorm(visual_encoder.num_features): torch's default eps


class EvaClipSettings(ModelSettings, FaceCropSettings):
    checkpoint: str = "eva_vit_g.pth"  # file inside source
    image_size: int = Field(448, ge=1)  # MiniGPT-v2 / Emotion-LLaMA run the tower at 448 px
    num_heads: int | None = Field(None, ge=1)  # default: width // 88 (EVA-g)
    layer_norm_eps: float = Field(1e-6, gt=0)
    ln_vision: Literal["auto", "checkpoint", "none"] = "auto"
    token: Literal["cls", "mean"] = "cls"  # per-frame summary of each hidden state
    frame_features: Literal["cls", "patches"] = "cls"
    pooling: Pooling = "mean"
    frame_batch: int = Field(16, ge=1)  # frames per forward pass


def _modules():
    """The tower's torch modules (built on first use: importing this file must not import torch)."""
    import torch
    from torch import nn

    class Mlp(nn.Module):
        def __init__(self, dim: int, hidden: int):
            super().__init__()
            self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))

    class Attention(nn.Module):
        def __init__(self, dim: int, num_heads: int, qkv_bias: bool):
            super().__init__()
            self.num_heads = num_heads
            self.scale = (dim // num_heads) ** -0.5
            self.qkv = nn.Linear(dim, dim * 3, bias=False)
            if qkv_bias:  # q and v only; k has no bias (EVA / BEiT)
                self.q_bias = nn.Parameter(torch.zeros(dim))
                self.v_bias = nn.Parameter(torch.zeros(dim))
            else:
                self.q_bias = self.v_bias = None
            self.proj = nn.Linear(dim, dim)

        def forward(self, x):
            b, n, _ = x.shape
            bias = None
            if self.q_bias is not None:
                bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
            qkv = nn.functional.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.num_heads, -1)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
            return self.proj((attn @ v).transpose(1, 2).reshape(b, n, -1))

    class Block(nn.Module):
        def __init__(self, dim: int, num_heads: int, mlp_hidden: int, qkv_bias: bool, layer_scale: bool, eps: float):
            super().__init__()
            self.norm1 = nn.LayerNorm(dim, eps=eps)
            self.attn = Attention(dim, num_heads, qkv_bias)
            self.norm2 = nn.LayerNorm(dim, eps=eps)
            self.mlp = Mlp(dim, mlp_hidden)
            if layer_scale:
                self.gamma_1 = nn.Parameter(torch.ones(dim))
                self.gamma_2 = nn.Parameter(torch.ones(dim))
            else:
                self.gamma_1 = self.gamma_2 = None

        def forward(self, x):
            if self.gamma_1 is None:
                x = x + self.attn(self.norm1(x))
                return x + self.mlp(self.norm2(x))
            x = x + self.gamma_1 * self.attn(self.norm1(x))
            return x + self.gamma_2 * self.mlp(self.norm2(x))

    class PatchEmbed(nn.Module):
        def __init__(self, dim: int, patch: int):
            super().__init__()
            self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

        def forward(self, x):
            return self.proj(x).flatten(2).transpose(1, 2)

    class EvaVisionTransformer(nn.Module):
        """``eva_vit.VisionTransformer`` on its inference path (no dropout / drop path / checkpointing)."""

        def __init__(self, geometry: dict[str, Any], image_size: int, num_heads: int, eps: float, ln_vision: bool):
            super().__init__()
            dim, patch = geometry["dim"], geometry["patch"]
            self.grid = image_size // patch
            self.patch_embed = PatchEmbed(dim, patch)
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
            self.pos_embed = nn.Parameter(torch.zeros(1, self.grid**2 + 1, dim))
            self.blocks = nn.ModuleList(
                Block(dim, num_heads, geometry["mlp_hidden"], geometry["qkv_bias"], geometry["layer_scale"], eps)
                for _ in range(geometry["depth"])
            )
            self.ln_vision = nn.LayerNorm(dim, eps=LN_VISION_EPS) if ln_vision else None

        def forward(self, pixels):
            """All hidden states [N, depth + 1, 1 + P, D] and the ln_vision-normed last state [N, 1 + P, D]."""
            x = self.patch_embed(pixels)
            x = torch.cat((self.cls_token.expand(len(x), -1, -1), x), dim=1) + self.pos_embed
            states = [x]
            for blk in self.blocks:
                x = blk(x)
                states.append(x)
            last = x
            if self.ln_vision is not None:  # MiniGPT's LayerNorm subclass computes in fp32
                last = self.ln_vision.float()(x.float()).to(x.dtype)
            return torch.stack(states, dim=1), last

    return EvaVisionTransformer


def read_state_dict(name: str, path: Path) -> dict[str, Any]:
    """The tower's tensors from a ``torch.save`` file (plain, under ``model``/``state_dict``, ``visual_encoder.``)."""
    import torch

    if not path.is_file():
        raise BackboneError(f"backbones.{name}: checkpoint {path} not found (eva_vit_g.pth: see the eva_clip docstring)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise BackboneError(f"backbones.{name}: cannot read {path}: {err}") from err
    for key in ("model", "state_dict", "module"):
        if isinstance(blob, dict) and isinstance(blob.get(key), dict):
            blob = blob[key]
    if not isinstance(blob, dict) or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise BackboneError(f"backbones.{name}: {path} is not a state dict of tensors")
    if any(k.startswith("visual_encoder.") for k in blob):  # a full BLIP-2 / MiniGPT checkpoint
        keep = {k[len("visual_encoder."):]: v for k, v in blob.items() if k.startswith("visual_encoder.")}
        keep |= {k: v for k, v in blob.items() if k.startswith("ln_vision.")}
        blob = keep
    return blob


def geometry(name: str, state: dict[str, Any], path: Path) -> dict[str, Any]:
    """Width, depth, patch size, MLP width, q/v biases and layer scale from the tensors' shapes."""
    need = ("patch_embed.proj.weight", "pos_embed", "cls_token", "blocks.0.mlp.fc1.weight")
    missing = [k for k in need if k not in state]
    if missing:
        raise BackboneError(f"backbones.{name}: {path} is not an EVA ViT checkpoint: missing {missing}")
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    dim, _, patch, _ = state["patch_embed.proj.weight"].shape
    return {
        "dim": int(dim), "depth": depth, "patch": int(patch), "mlp_hidden": int(state["blocks.0.mlp.fc1.weight"].shape[0]),
        "qkv_bias": "blocks.0.attn.q_bias" in state, "layer_scale": "blocks.0.gamma_1" in state,
        "pos_grid": round(math.sqrt(state["pos_embed"].shape[1] - 1)),
    }


def interpolate_pos_embed(pos, grid: int):
    """eva_vit.interpolate_pos_embed: the patch positions resized bicubically to ``grid`` × ``grid``."""
    import torch

    pos = pos.float()
    old = round(math.sqrt(pos.shape[1] - 1))
    if old == grid:
        return pos
    extra, tokens = pos[:, :1], pos[:, 1:]
    tokens = tokens.reshape(-1, old, old, pos.shape[-1]).permute(0, 3, 1, 2)
    tokens = torch.nn.functional.interpolate(tokens, size=(grid, grid), mode="bicubic", align_corners=False)
    return torch.cat((extra, tokens.permute(0, 2, 3, 1).flatten(1, 2)), dim=1)


def load_tower(name: str, path: Path, settings: EvaClipSettings) -> tuple[Any, dict[str, Any]]:
    """Build the tower from the checkpoint's geometry and load it strictly; returns ``(model, report)``."""
    state = read_state_dict(name, path)
    geo = geometry(name, state, path)
    if settings.image_size % geo["patch"]:
        raise BackboneError(f"backbones.{name}: image_size {settings.image_size} is not a multiple of the "
                            f"checkpoint's patch size {geo['patch']}")
    heads = settings.num_heads or max(1, geo["dim"] // EVA_G_HEAD_DIM)
    if geo["dim"] % heads:
        raise BackboneError(f"backbones.{name}: num_heads {heads} does not divide the width {geo['dim']}")
    has_ln = {"ln_vision.weight", "ln_vision.bias"} <= set(state)
    if settings.ln_vision == "checkpoint" and not has_ln:
        raise BackboneError(f"backbones.{name}: ln_vision: checkpoint, but {path} has no ln_vision.weight/bias")
    use_ln = settings.ln_vision != "none"
    model = _modules()(geo, settings.image_size, heads, settings.layer_norm_eps, use_ln)
    report: dict[str, Any] = {}
    state = dict(state)
    grid = settings.image_size // geo["patch"]
    if geo["pos_grid"] != grid:
        state["pos_embed"] = interpolate_pos_embed(state["pos_embed"], grid)
        report["pos_embed_interpolated"] = f"{geo['pos_grid']}x{geo['pos_grid']} -> {grid}x{grid} (bicubic)"
    if use_ln and not has_ln:
        report["ln_vision"] = "unit LayerNorm (not in the checkpoint; MiniGPT-v2 initialises and freezes it)"
    elif use_ln:
        report["ln_vision"] = "from the checkpoint"
    elif has_ln:
        state = {k: v for k, v in state.items() if not k.startswith("ln_vision.")}
        report["unused_tensors"] = ["ln_vision"]
    own = model.state_dict()
    optional = {"ln_vision.weight", "ln_vision.bias"} if use_ln and not has_ln else set()
    missing = sorted(set(own) - set(state) - optional)
    unexpected = sorted(set(state) - set(own))
    misshaped = sorted(f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
                       for k in set(own) & set(state) if state[k].shape != own[k].shape)
    problems = [f"{what} {keys[:20]}" for what, keys in (("missing", missing), ("unexpected", unexpected))
                if keys]
    if misshaped:
        problems.append("mis-shaped " + ", ".join(misshaped[:20]))
    if problems:
        raise BackboneError(
            f"backbones.{name}: the checkpoint {path} does not fit the EVA ViT ({geo['depth']} blocks of "
            f"{geo['dim']}): " + "; ".join(problems) + " (a renamed, extra or mis-shaped tensor: a wrong or damaged "
            "checkpoint; EVA-02 towers are not this model)"
        )
    model.load_state_dict(state, strict=not optional)
    return model.eval(), report


@register_backbone(
    "eva_clip", description="EVA-CLIP ViT-g/14 (MiniGPT-v2's tower, eva_vit_g.pth) per frame, every layer pooled",
    settings=EvaClipSettings, licence="MIT (BAAI EVA / EVA-CLIP weights); eva_vit.py: BSD-3-Clause (MiniGPT-4, LAVIS)",
    weights="`pipeline.tools.models fetch` (`hub: url:` LAVIS's `eva_vit_g.pth`)",
    verified="MiniGPT-4/MiniGPT-v2's own `eva_vit.py` (`create_eva_vit_g` path: pos-embed interpolation, "
             "`ln_vision`, `Blip2ImageEvalProcessor`) on a tiny random tower, real RAVDESS frames, run once in a "
             "throw-away venv, committed goldens: every block's tokens, `ln_vision`, CLS and merged patch tokens cos ≥ 0.9999, "
             "equal token counts",
    verified_by="tests/test_parity_eva.py::test_eva_clip_matches_the_original_eva_vit",
)
class EvaClipBackbone(PerFrameBackbone):
    def __init__(self, name: str, settings: EvaClipSettings):
        super().__init__(name, settings)
        import torch

        self._torch = torch
        self.load_runtime()
        self.checkpoint = self.model_dir / settings.checkpoint
        self.model, self.load_report = load_tower(name, self.checkpoint, settings)
        self.model.to(self.device, self.dtype)
        self.geometry = geometry(name, dict(self.model.state_dict()), self.checkpoint)
        self.image_size = settings.image_size
        self.frame_features = settings.frame_features
        self.init_frames(settings)

    def preprocess(self, images: Sequence[np.ndarray]):
        """Blip2ImageEvalProcessor: PIL bicubic resize to image_size², ToTensor, CLIP mean/std."""
        from PIL import Image

        torch = self._torch
        size = (self.image_size, self.image_size)
        arr = np.stack([np.asarray(Image.fromarray(np.asarray(im, np.uint8)).convert("RGB").resize(size, Image.BICUBIC))
                        for im in images]).astype(np.float32) / 255.0
        arr = (arr - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)
        return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()

    def forward(self, images: Sequence[np.ndarray]):
        """Hidden states [N, L, 1 + P, D] and the normed last state [N, 1 + P, D] (float32, CPU tensors)."""
        torch = self._torch
        pixels = self.preprocess(images).to(self.device, self.dtype)
        with torch.inference_mode():
            states, last = self.model(pixels)
        return states.float().cpu(), last.float().cpu()

    def _summaries(self, images: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-frame layer summaries [N, L, D], CLS after ln_vision [N, D] and, for ``frame_features:
        patches``, the patch tokens merged 4 by 4 (MiniGPT-v2's merge) [N, P/4, 4D] (else [N, 0, 4D])."""
        states, last = self.forward(images)
        summary = (states[:, :, 0] if self.token == "cls" else states[:, :, 1:].mean(2)).numpy()
        n, p, d = last[:, 1:].shape
        merged = (last[:, 1:].reshape(n, p // 4, 4 * d).numpy() if self.frame_features == "patches"
                  else np.zeros((n, 0, 4 * d), np.float32))
        return summary, last[:, 0].numpy(), merged

    def embed(self, batch: Sequence[np.ndarray]) -> list[Embedding]:
        d, n_layers = self.geometry["dim"], self.geometry["depth"] + 1
        (summary, vectors, merged), spans = self.run_frames(batch, self._summaries,
                                                            [(0, n_layers, d), (0, d), (0, 0, 4 * d)])
        results = []
        for a, b in spans:
            pooled = pool(summary[a:b].transpose(1, 0, 2), self.pooling).astype(np.float32)
            if self.frame_features == "cls":
                out = vectors[a:b]
            elif b > a:
                out = merged[a]  # the first frame's merged patch tokens (Emotion-LLaMA's extract_frame)
            else:
                out = np.zeros((0, 4 * d), np.float32)
            results.append(Embedding(pooled, out))
        return results

    def describe(self) -> dict[str, Any]:
        import hashlib

        from pipeline.core.runtime import _hash_file, resolve_revision

        if (self.model_dir / "FETCHED.json").is_file():  # `pipeline.tools.models fetch` recorded the file's digest
            revision = resolve_revision(self.model_dir)
        else:
            digest = hashlib.sha256()
            _hash_file(digest, self.checkpoint)
            revision = f"sha256:{digest.hexdigest()[:16]}"
        return {
            "source": self.settings.source,
            "revision": revision,
            "frame_rate": None,  # cls: the segment fps, filled in by the embed driver
            "model_type": "eva_vit_g (EVA01-CLIP, MiniGPT-v2 eva_vit.py)",
            "image_size": self.image_size,
            "geometry": {k: v for k, v in self.geometry.items() if k != "pos_grid"},
            "token": self.token,
            "frame_features": self.frame_features,
            "frames_are": "video frames" if self.frame_features == "cls" else "merged patch tokens of the first frame",
            "frame_dims": self.geometry["dim"] * (4 if self.frame_features == "patches" else 1),
            **self.frame_info(),
        }
