"""LanguageBind's towers and preprocessing on transformers 5: shared by the backbones and the LoRA fine-tuning head.

What the ``languagebind_text`` / ``_video`` / ``_audio`` backbones (:mod:`pipeline.features.backbones.languagebind`,
whose docstring describes the checkpoint layout, the strict loading, the LoRA merge and the preprocessing)
and the ``lora_multimodal`` fine-tuning head (:mod:`pipeline.heads.finetune.multimodal`) both run: reading
a published ``LanguageBindVideo`` / ``LanguageBindAudio`` checkpoint, building its text tower
(``CLIPTextModelWithProjection``) or its vision-style tower (CLIP ViT + temporal attention), and
LanguageBind's own input transforms (CLIP tokenizer, linspace frames + OpenAI normalisation +
ShortSideScale/CenterCrop, the 3-channel Kaldi-fbank "image"). It lives in :mod:`pipeline.models`
because heads may not import ``features`` (and in ``core`` every stage would depend on it); errors are :class:`~pipeline.core.errors.BackboneError` naming ``backbones.<name>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.errors import BackboneError

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
MODEL_TYPES = {"video": "LanguageBindVideo", "audio": "LanguageBindAudio"}
MIN_SAMPLES = 400  # one 25-ms Kaldi window at 16 kHz
TEXT_PREFIXES = ("text_model.", "text_projection.")
VISION_PREFIXES = ("vision_model.", "visual_projection.")
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


# --- whole towers: what the backbones and the fine-tuning head load ------------------------------------


def load_text_tower(name: str, model_dir: Path):
    """The text tower of a Video/Audio checkpoint: ``(CLIPTextModelWithProjection, CLIPTokenizer, config,
    load report)``, loaded strictly (the checkpoint's LoRA factors merged)."""
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    config, state, report = _read(name, model_dir, ("video", "audio"))
    text = dict(config["text_config"], projection_dim=config.get("projection_dim", 512))
    model = CLIPTextModelWithProjection(_clip_config("CLIPTextConfig", text))
    report.update(load_strict(name, model, state, model_dir, TEXT_PREFIXES))
    if not (model_dir / "vocab.json").is_file():
        raise BackboneError(f"backbones.{name}: {model_dir} has no vocab.json/merges.txt (CLIP tokenizer)")
    return model, CLIPTokenizer.from_pretrained(model_dir), config, report


def load_vision_tower(name: str, model_dir: Path, kind: str):
    """The video (``kind="video"``) or audio tower of a checkpoint: ``(tower module, config, load report)``."""
    config, state, report = _read(name, model_dir, (kind,))
    tower_cls, _, _ = build_vision_tower(config["vision_config"], int(config.get("projection_dim", 512)))
    tower = tower_cls(kind == "audio")
    report.update(load_strict(name, tower, state, model_dir, VISION_PREFIXES))
    if kind == "audio":
        vision = config["vision_config"]
        for key in ("num_mel_bins", "target_length", "audio_mean", "audio_std"):
            if not vision.get(key):
                raise BackboneError(f"backbones.{name}: {model_dir}/config.json vision_config has no {key}")
        if int(vision.get("audio_sample_rate", 16000)) != 16000:
            raise BackboneError(f"backbones.{name}: vision_config.audio_sample_rate is "
                                f"{vision['audio_sample_rate']}; the pipeline's audio is 16 kHz")
    return tower, config, report


def _read(name: str, model_dir: Path, kinds: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    config = read_config(name, model_dir, kinds)
    vision = config["vision_config"]
    if vision.get("clip_type", "vl") != "vl":
        raise BackboneError(f"backbones.{name}: {model_dir}/config.json vision_config.clip_type "
                            f"{vision.get('clip_type')!r} (3-D patch embedding) is not supported; only 'vl'")
    state = read_state_dict(name, model_dir)
    state, merged = merge_lora(name, state, float(vision.get("lora_alpha", 16)), int(vision.get("lora_r", 0)))
    return config, state, ({"lora_merged": len(merged)} if merged else {})


def text_inputs(tokenizer, texts: Sequence[str], max_length: int) -> dict[str, Any]:
    """CLIP token ids and attention mask of a batch of texts, truncated at ``max_length`` as LanguageBind's."""
    enc = tokenizer(list(texts), max_length=max_length, padding=True, truncation=True, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def text_features(model, input_ids, attention_mask):
    """Projected text embedding [B, P]: the last hidden state at the highest token id (LanguageBind's pooling)."""
    import torch

    hidden = model.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), input_ids.argmax(dim=-1)]
    return model.text_projection(pooled)
