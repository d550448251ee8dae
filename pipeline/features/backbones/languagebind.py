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
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from pipeline.core.errors import BackboneError
from pipeline.core.runtime import resolve_revision
from pipeline.features.backbones.base import Backbone, Embedding, ModelSettings, register_backbone

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
MODEL_TYPES = {"video": "LanguageBindVideo", "audio": "LanguageBindAudio"}
MIN_SAMPLES = 400  # one 25-ms Kaldi window at 16 kHz
_LORA = re.compile(r"^(?P<mod>.+)\.lora_(?P<ab>[AB])\.(?P<adapter>[^.]+)\.weight$")


# --- checkpoint reading --------------------------------------------------------------------------------


def read_config(name: str, model_dir: Path, kinds: Sequence[str]) -> dict[str, Any]:
    """``config.json`` of a LanguageBind checkpoint whose model_type is one of ``kinds``'."""
    path = model_dir / "config.json"
    if not path.is_file():
        raise BackboneError(f"backbones.{name}: {model_dir} has no config.json (not a LanguageBind checkpoint)")
    config = json.loads(path.read_text())
    allowed = tuple(MODEL_TYPES[k] for k in kinds)
    if config.get("model_type") not in allowed:
        raise BackboneError(f"backbones.{name}: {path} declares model_type {config.get('model_type')!r}; "
                            f"this backbone type needs one of {allowed}")
    for key in ("text_config", "vision_config"):
        if not isinstance(config.get(key), dict):
            raise BackboneError(f"backbones.{name}: {path} has no {key}")
    return config


def read_state_dict(name: str, model_dir: Path) -> dict[str, Any]:
    """All tensors of the checkpoint (``model.safetensors`` / ``pytorch_model.bin``, sharded or not)."""
    import torch

    def load(f: Path) -> dict[str, Any]:
        try:
            if f.suffix == ".safetensors":
                from safetensors.torch import load_file

                return load_file(str(f))
            return torch.load(f, map_location="cpu", weights_only=True)
        except Exception as err:  # damaged or foreign files: one line naming the file
            raise BackboneError(f"backbones.{name}: cannot read weights {f}: {err}") from err

    for single, index in (("model.safetensors", "model.safetensors.index.json"),
                          ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        if (model_dir / single).is_file():
            return load(model_dir / single)
        if (model_dir / index).is_file():
            files = sorted(set(json.loads((model_dir / index).read_text())["weight_map"].values()))
            state: dict[str, Any] = {}
            for f in files:
                state.update(load(model_dir / f))
            return state
    raise BackboneError(f"backbones.{name}: {model_dir} has no model.safetensors or pytorch_model.bin "
                        f"(an interrupted fetch?)")


def merge_lora(name: str, state: dict[str, Any], alpha: float, r: int) -> tuple[dict[str, Any], list[str]]:
    """PEFT names → plain names, LoRA factors merged into their base weights; returns (state, merged modules)."""
    plain: dict[str, Any] = {}
    factors: dict[str, dict[str, Any]] = {}
    for key, value in state.items():
        key = key.replace(".base_model.model.", ".")
        match = _LORA.match(key)
        if match:
            factors.setdefault(match["mod"], {})[match["ab"]] = value
            continue
        plain[key.replace(".base_layer.", ".")] = value
    merged = []
    for mod, ab in sorted(factors.items()):
        if set(ab) != {"A", "B"} or f"{mod}.weight" not in plain:
            raise BackboneError(f"backbones.{name}: LoRA factors of {mod} are incomplete (have {sorted(ab)}, "
                                f"base weight {'present' if f'{mod}.weight' in plain else 'missing'})")
        if r <= 0:
            raise BackboneError(f"backbones.{name}: the checkpoint has LoRA factors ({mod}) but its "
                                f"vision_config.lora_r is {r}")
        weight = plain[f"{mod}.weight"]
        plain[f"{mod}.weight"] = (weight.float() + (ab["B"].float() @ ab["A"].float()) * (alpha / r)).to(weight.dtype)
        merged.append(mod)
    return plain, merged


def load_strict(name: str, module: Any, state: dict[str, Any], model_dir: Path, prefixes: Sequence[str],
                ) -> dict[str, Any]:
    """Load the checkpoint tensors under ``prefixes`` into ``module`` strictly; report what else was there."""
    own = {k: v for k, v in state.items() if k.startswith(tuple(prefixes)) and not k.endswith("position_ids")}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(own))
    unexpected = sorted(set(own) - set(expected))
    mis_shaped = sorted(f"{k} (checkpoint {tuple(own[k].shape)}, model {tuple(expected[k].shape)})"
                        for k in set(own) & set(expected) if tuple(own[k].shape) != tuple(expected[k].shape))
    problems = [f"{what} {items[:20]}" for what, items in
                (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mis_shaped)) if items]
    if problems:
        raise BackboneError(f"backbones.{name}: the checkpoint in {model_dir} does not fit LanguageBind's "
                            f"{'/'.join(p.rstrip('.') for p in prefixes)}: " + "; ".join(problems))
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in own.items()}, strict=True)
    outside = sorted({k.split(".")[0] for k in state if not k.startswith(tuple(prefixes))})
    return {"unused_tensors": outside} if outside else {}


def _clip_config(cls_name: str, cfg: dict[str, Any]):
    import transformers

    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "hidden_act",
            "layer_norm_eps", "attention_dropout", "projection_dim", "vocab_size", "max_position_embeddings",
            "bos_token_id", "eos_token_id", "pad_token_id", "num_channels", "image_size", "patch_size")
    config = getattr(transformers, cls_name)(**{k: cfg[k] for k in keys if k in cfg})
    config._attn_implementation = "sdpa"
    return config


# --- the vision-style tower (video and audio) -------------------------------------------------------------


def build_vision_tower(vision: dict[str, Any], projection_dim: int):
    """LanguageBind's ``vision_model`` + ``visual_projection`` as a torch module (see module docstring)."""
    import torch
    from torch import nn
    from transformers.models.clip.modeling_clip import CLIPMLP, CLIPAttention

    config = _clip_config("CLIPVisionConfig", vision)
    dim = config.hidden_size
    eps = config.layer_norm_eps
    time_attn = bool(vision.get("add_time_attn", False))
    num_frames = int(vision.get("num_frames", 1))
    mels, target = int(vision.get("num_mel_bins") or 0), int(vision.get("target_length") or 0)
    size = (mels, target) if mels and target else (config.image_size, config.image_size)
    grid = (size[0] // config.patch_size, size[1] // config.patch_size)

    class Embeddings(nn.Module):
        def __init__(self):
            super().__init__()
            self.class_embedding = nn.Parameter(torch.zeros(dim))
            self.patch_embedding = nn.Conv2d(config.num_channels, dim, config.patch_size, config.patch_size,
                                             bias=False)
            self.position_embedding = nn.Embedding(grid[0] * grid[1] + 1, dim)

        def forward(self, pixels):
            patches = self.patch_embedding(pixels).flatten(2).transpose(1, 2)
            cls = self.class_embedding.expand(pixels.shape[0], 1, -1).to(patches.dtype)
            return torch.cat([cls, patches], dim=1) + self.position_embedding.weight

    class Layer(nn.Module):
        def __init__(self, audio_mlp: bool):
            super().__init__()
            self.self_attn = CLIPAttention(config)
            self.layer_norm1 = nn.LayerNorm(dim, eps=eps)
            self.mlp = CLIPMLP(config)
            self.layer_norm2 = nn.LayerNorm(dim, eps=eps)
            self.time = time_attn
            self.audio_mlp = audio_mlp and time_attn
            if time_attn:
                self.temporal_embedding = nn.Parameter(torch.zeros(1, num_frames, dim))
                self.temporal_attn = CLIPAttention(config)
                self.temporal_layer_norm1 = nn.LayerNorm(dim, eps=eps)
                if self.audio_mlp:
                    self.temporal_mlp = CLIPMLP(config)
                    self.temporal_layer_norm2 = nn.LayerNorm(dim, eps=eps)

        def _over_time(self, x, fn, t):  # (b t) n d -> (b n) t d -> fn -> back
            bt, n, d = x.shape
            y = x.reshape(bt // t, t, n, d).permute(0, 2, 1, 3).reshape(-1, t, d)
            y = fn(y)
            return y.reshape(bt // t, n, t, d).permute(0, 2, 1, 3).reshape(bt, n, d)

        def forward(self, x):
            if self.time:
                t = num_frames
                if t != 1:
                    x = self._over_time(x, lambda y: y + self.temporal_embedding[:, :t].to(y.dtype), t)
                x = x + self._over_time(x, lambda y: self.temporal_attn(self.temporal_layer_norm1(y))[0], t)
                if self.audio_mlp:
                    x = x + self._over_time(x, lambda y: self.temporal_mlp(self.temporal_layer_norm2(y)), t)
            x = x + self.self_attn(self.layer_norm1(x))[0]
            return x + self.mlp(self.layer_norm2(x))

    class Encoder(nn.Module):
        def __init__(self, audio_mlp: bool):
            super().__init__()
            self.layers = nn.ModuleList(Layer(audio_mlp) for _ in range(config.num_hidden_layers))

    class VisionModel(nn.Module):
        def __init__(self, audio_mlp: bool):
            super().__init__()
            self.embeddings = Embeddings()
            self.pre_layrnorm = nn.LayerNorm(dim, eps=eps)
            self.encoder = Encoder(audio_mlp)
            self.post_layernorm = nn.LayerNorm(dim, eps=eps)

    class Tower(nn.Module):
        """pixel_values [B, C, T, H, W] (video) or [B, C, H, W] → (embedding [B, P], per-frame [B, T, P],
        hidden states: tuple of [B*T, tokens, D])."""

        def __init__(self, audio_mlp: bool):
            super().__init__()
            self.vision_model = VisionModel(audio_mlp)
            self.visual_projection = nn.Linear(dim, projection_dim, bias=False)
            self.num_frames = num_frames

        def forward(self, pixels):
            if pixels.ndim == 5:
                b, c, t, h, w = pixels.shape
                pixels = pixels.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
            else:
                b, t = pixels.shape[0], 1
            vm = self.vision_model
            x = vm.pre_layrnorm(vm.embeddings(pixels))
            states = [x]
            for layer in vm.encoder.layers:
                x = layer(x)
                states.append(x)
            per_frame = self.visual_projection(vm.post_layernorm(x[:, 0])).reshape(b, t, -1)
            return per_frame.mean(1), per_frame, tuple(states)

    return Tower, config, size


# --- preprocessing -------------------------------------------------------------------------------------


def sample_frame_ids(n: int, k: int) -> np.ndarray:
    """LanguageBind's frame choice: ``np.linspace(0, n - 1, k, dtype=int)`` (repeats when n < k)."""
    return np.linspace(0, n - 1, k, dtype=int)


def video_pixels(frames: np.ndarray, num_frames: int, size: int):
    """uint8 [T, H, W, 3] → float [3, num_frames, size, size] as LanguageBind's video transform (no flip)."""
    import math

    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(frames[sample_frame_ids(len(frames), num_frames)]))
    x = x.permute(3, 0, 1, 2).float() / 255.0  # C T H W
    mean = torch.tensor(OPENAI_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(OPENAI_STD).view(3, 1, 1, 1)
    x = (x - mean) / std
    h, w = x.shape[-2:]
    if w < h:
        new_h, new_w = math.floor((float(h) / w) * size), size
    else:
        new_h, new_w = size, math.floor((float(w) / h) * size)
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
    i, j = round((new_h - size) / 2.0), round((new_w - size) / 2.0)
    return x[..., i:i + size, j:j + size]


def kaldi_fbank(wave: np.ndarray, sample_rate: int, num_mel_bins: int) -> np.ndarray:
    """Kaldi fbank as ``torchaudio.compliance.kaldi.fbank(htk_compat=True, use_energy=False,
    window_type="hanning", dither=0, frame_length=25, frame_shift=10)``: [frames, num_mel_bins]."""
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = float(sample_rate)
    opts.frame_opts.frame_length_ms = 25.0
    opts.frame_opts.frame_shift_ms = 10.0
    opts.frame_opts.dither = 0.0
    opts.frame_opts.window_type = "hanning"
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = num_mel_bins
    opts.use_energy = False
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(float(sample_rate), wave.astype(np.float32).tolist())
    fbank.input_finished()
    n = fbank.num_frames_ready
    if n == 0:
        return np.zeros((0, num_mel_bins), np.float32)
    return np.stack([fbank.get_frame(i) for i in range(n)]).astype(np.float32)


def audio_image(wave: np.ndarray, vision: dict[str, Any], crop_seed: int) -> tuple[np.ndarray, str]:
    """16-kHz mono → the [3, num_mel_bins, target_length] fbank "image"; and which path it took
    (``repeated``, ``long``, ``equal``, or ``padded``: under one window, zero-padded to it, then repeated)."""
    wave = wave.astype(np.float32)
    padded = len(wave) < MIN_SAMPLES
    if padded:  # shorter than one 25-ms window: LanguageBind's own code divides by zero frames here
        wave = np.pad(wave, (0, MIN_SAMPLES - len(wave)))
    wave = wave - wave.mean()
    mel = kaldi_fbank(wave, int(vision.get("audio_sample_rate", 16000)), int(vision["num_mel_bins"]))
    target = int(vision["target_length"])
    if len(mel) > target:
        ranges = np.array_split(list(range(len(mel) - target + 1)), 3)
        ranges = [r if len(r) else np.array([0]) for r in ranges]
        rng = np.random.RandomState(crop_seed)
        starts = [rng.choice(r) for r in ranges]
        image, path = np.stack([mel[s:s + target] for s in starts]), "long"
    elif len(mel) < target:
        mel = np.tile(mel, (target // len(mel) + 1, 1))[:target]
        image, path = np.stack([mel, mel, mel]), "repeated"
    else:
        image, path = np.stack([mel, mel, mel]), "equal"
    image = image.transpose(0, 2, 1)
    image = (image - float(vision["audio_mean"])) / (float(vision["audio_std"]) * 2)
    return image.astype(np.float32), "padded" if padded else path


# --- backbones -----------------------------------------------------------------------------------------


class LanguageBindSettings(ModelSettings):
    normalize: bool = False  # L2-normalise the projected embedding (LanguageBind.forward does)


class LanguageBindTextSettings(LanguageBindSettings):
    max_length: int = Field(77, ge=2)  # CLIP's context length


class LanguageBindAudioSettings(LanguageBindSettings):
    crop_seed: int = 0  # RandomState seed (per item) for the three crops of inputs over target_length frames


class _LanguageBindBase(Backbone):
    kinds: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()

    def _load(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        self.load_runtime()
        self.config = read_config(name, self.model_dir, self.kinds)
        vision = self.config["vision_config"]
        if vision.get("clip_type", "vl") != "vl":
            raise BackboneError(f"backbones.{name}: {self.model_dir}/config.json vision_config.clip_type "
                                f"{vision.get('clip_type')!r} (3-D patch embedding) is not supported; only 'vl'")
        state = read_state_dict(name, self.model_dir)
        state, merged = merge_lora(name, state, float(vision.get("lora_alpha", 16)), int(vision.get("lora_r", 0)))
        self.load_report: dict[str, Any] = {"lora_merged": len(merged)} if merged else {}
        return self.config, state

    def _finish(self, vectors):
        torch = self._torch
        if self.settings.normalize:
            vectors = torch.nn.functional.normalize(vectors.float(), dim=-1)
        return vectors.float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {"source": self.settings.source, "revision": resolve_revision(self.model_dir), "frame_rate": None,
                "model_type": self.config.get("model_type"), "normalize": self.settings.normalize,
                "load_report": self.load_report}


@register_backbone(
    "languagebind_text", description="LanguageBind text tower (CLIP text encoder + projection) of a Video/Audio checkpoint",
    settings=LanguageBindTextSettings, licence="MIT (LanguageBind)", weights="`pipeline.tools.models fetch`",
    verified="LanguageBind's own `get_text_features` (its modelling code, transformers 4.30) with its tokenizer, "
             "tiny random towers saved by its `save_pretrained`: cos ≥ 0.9999, equal token ids",
    verified_by="tests/test_parity_languagebind.py::test_text_matches_languagebind",
)
class LanguageBindTextBackbone(_LanguageBindBase):
    modality = "text"
    kinds = ("video", "audio")
    prefixes = ("text_model.", "text_projection.")

    def __init__(self, name: str, settings: LanguageBindTextSettings):
        super().__init__(name, settings)
        import torch
        from transformers import CLIPTextModelWithProjection, CLIPTokenizer

        self._torch = torch
        config, state = self._load(name)
        text = dict(config["text_config"], projection_dim=config.get("projection_dim", 512))
        model = CLIPTextModelWithProjection(_clip_config("CLIPTextConfig", text))
        self.load_report.update(load_strict(name, model, state, self.model_dir, self.prefixes))
        self.model = model.to(self.device, self.dtype).eval()
        if not (self.model_dir / "vocab.json").is_file():
            raise BackboneError(f"backbones.{name}: {self.model_dir} has no vocab.json/merges.txt (CLIP tokenizer)")
        self.tokenizer = CLIPTokenizer.from_pretrained(self.model_dir)

    def embed(self, batch: Sequence[str]) -> list[Embedding]:
        torch = self._torch
        enc = self.tokenizer(list(batch), max_length=self.settings.max_length, padding=True, truncation=True,
                             return_tensors="pt").to(self.device)
        with torch.inference_mode():
            out = self.model.text_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
            hidden = out.last_hidden_state
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), enc["input_ids"].argmax(dim=-1)]
            vectors = self._finish(self.model.text_projection(pooled))
        return [Embedding(v) for v in vectors]


class _VisionTowerBackbone(_LanguageBindBase):
    prefixes = ("vision_model.", "visual_projection.")

    def _build(self, name: str, audio_mlp: bool) -> None:
        import torch

        self._torch = torch
        config, state = self._load(name)
        self.vision = config["vision_config"]
        tower_cls, _, self.image_size = build_vision_tower(self.vision, int(config.get("projection_dim", 512)))
        tower = tower_cls(audio_mlp)
        self.load_report.update(load_strict(name, tower, state, self.model_dir, self.prefixes))
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
    kinds = ("video",)

    def __init__(self, name: str, settings: LanguageBindSettings):
        super().__init__(name, settings)
        self._build(name, audio_mlp=False)
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
    kinds = ("audio",)

    def __init__(self, name: str, settings: LanguageBindAudioSettings):
        super().__init__(name, settings)
        self._build(name, audio_mlp=True)
        for key in ("num_mel_bins", "target_length", "audio_mean", "audio_std"):
            if not self.vision.get(key):
                raise BackboneError(f"backbones.{name}: {self.model_dir}/config.json vision_config has no {key}")
        if int(self.vision.get("audio_sample_rate", 16000)) != 16000:
            raise BackboneError(f"backbones.{name}: vision_config.audio_sample_rate is "
                                f"{self.vision['audio_sample_rate']}; the pipeline's audio is 16 kHz")
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
