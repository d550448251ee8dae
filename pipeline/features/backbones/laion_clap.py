"""LAION-CLAP training checkpoints (``.pt``) → transformers ``ClapModel`` weights, by key mapping.

LAION-CLAP (https://github.com/LAION-AI/CLAP, CC0-1.0 code; checkpoints such as
``630k-audioset-fusion-best.pt`` under CC0 / their model cards) and derived checkpoints such as
Audio Flamingo 2's AF-CLAP (``epoch_16.pt``, NVIDIA licence terms) store
``{"state_dict": {...}, ...}`` with the names of LAION's own modules, prefixed ``module.`` by
DistributedDataParallel. The ``laion_clap`` package itself cannot be used here (it pins numpy<2,
imports torchvision and downloads roberta-base when built), so this module renames the tensors.

The names below were read from LAION's sources (``src/laion_clap/clap_module/model.py``: ``CLAP``
with ``audio_branch``/``text_branch``, ``audio_projection``/``text_projection`` =
``Sequential(Linear, act, Linear)``, ``audio_transform``/``text_transform`` = ``MLPLayers``,
``logit_scale_a``/``logit_scale_t``; ``htsat.py``: ``HTSAT_Swin_Transformer`` with
``spectrogram_extractor``, ``logmel_extractor``, ``bn0``, ``patch_embed`` (``proj``, ``norm``,
fusion ``mel_conv2d`` + ``fusion_model`` AFF), ``layers.i.blocks.j`` (``norm1``, ``attn.qkv``,
``attn.proj``, ``attn.relative_position_bias_table``/``_index``, ``attn_mask``, ``norm2``,
``mlp.fc1``/``fc2``), ``layers.i.downsample`` (``reduction``, ``norm``), ``norm``, ``tscam_conv``,
``head``; ``feature_fusion.py``: ``AFF.local_att``/``global_att``) and checked against
transformers' ``convert_clap_original_pytorch_to_hf.py`` (the same renames, with the fused ``qkv``
projection split into query/key/value). Unlike that script, nothing is dropped silently:

* every LAION tensor is either mapped, or on the :data:`IGNORED` list (no counterpart in
  ``ClapModel``, with the reason), or *unexpected*;
* every ``ClapModel`` tensor is either filled or on the :data:`REBUILT` list (deterministic buffers
  that transformers computes itself), or *missing*;
* unexpected, missing or shape-mismatched tensors raise :class:`BackboneError` listing all of them,
  unless ``strict=False``, which warns with the full lists and returns them in the report.

Only the HTS-AT audio encoder and the RoBERTa text encoder map onto ``ClapModel`` (the PANN
audio encoders and the CLIP-transformer/BERT/BART text branches of LAION's code do not).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.errors import BackboneError

_HF_AUDIO = "audio_model.audio_encoder."
_BLOCK = "layers.{i}.blocks.{j}."

# (LAION name template, transformers name template or (query, key, value) templates). Placeholders:
# {i}/{j} integers, {p} one name segment (weight, bias, running_mean, ...), {rest} any dotted tail.
RULES: list[tuple[str, str | tuple[str, str, str]]] = [
    ("text_branch.{rest}", "text_model.{rest}"),  # LAION's text branch is transformers' RobertaModel
    ("text_projection.0.{p}", "text_projection.linear1.{p}"),
    ("text_projection.2.{p}", "text_projection.linear2.{p}"),
    ("audio_projection.0.{p}", "audio_projection.linear1.{p}"),
    ("audio_projection.2.{p}", "audio_projection.linear2.{p}"),
    ("logit_scale_a", "logit_scale_a"),
    ("logit_scale_t", "logit_scale_t"),
    ("audio_branch.bn0.{p}", _HF_AUDIO + "batch_norm.{p}"),
    ("audio_branch.patch_embed.{rest}", _HF_AUDIO + "patch_embed.{rest}"),
    ("audio_branch." + _BLOCK + "norm1.{p}", _HF_AUDIO + _BLOCK + "layernorm_before.{p}"),
    ("audio_branch." + _BLOCK + "norm2.{p}", _HF_AUDIO + _BLOCK + "layernorm_after.{p}"),
    (
        "audio_branch." + _BLOCK + "attn.qkv.{p}",
        tuple(_HF_AUDIO + _BLOCK + f"attention.self.{part}.{{p}}" for part in ("query", "key", "value")),
    ),
    ("audio_branch." + _BLOCK + "attn.proj.{p}", _HF_AUDIO + _BLOCK + "attention.output.dense.{p}"),
    (
        "audio_branch." + _BLOCK + "attn.relative_position_bias_table",
        _HF_AUDIO + _BLOCK + "attention.self.relative_position_bias_table",
    ),
    (
        "audio_branch." + _BLOCK + "attn.relative_position_index",
        _HF_AUDIO + _BLOCK + "attention.self.relative_position_index",
    ),
    ("audio_branch." + _BLOCK + "mlp.fc1.{p}", _HF_AUDIO + _BLOCK + "intermediate.dense.{p}"),
    ("audio_branch." + _BLOCK + "mlp.fc2.{p}", _HF_AUDIO + _BLOCK + "output.dense.{p}"),
    ("audio_branch.layers.{i}.downsample.{rest}", _HF_AUDIO + "layers.{i}.downsample.{rest}"),
    ("audio_branch.norm.{p}", _HF_AUDIO + "norm.{p}"),
]

# LAION tensors with no counterpart in ClapModel, and why dropping them is right.
IGNORED: list[tuple[str, str]] = [
    (r"audio_branch\.spectrogram_extractor\..+", "STFT kernels: ClapFeatureExtractor computes the spectrogram"),
    (r"audio_branch\.logmel_extractor\..+", "mel filterbank: ClapFeatureExtractor computes the log-mel"),
    (r"audio_branch\.layers\.\d+\.blocks\.\d+\.attn_mask", "shifted-window mask: transformers rebuilds it"),
    (r"audio_branch\.(tscam_conv|head)\..+", "HTS-AT AudioSet classification head: not part of the embedding"),
    (r"(audio|text)_transform\..+", "training-only MLP heads: not used for embeddings"),
]

# ClapModel tensors that a checkpoint may lack because they are deterministic buffers.
REBUILT = (
    re.compile(r"text_model\.embeddings\.(position_ids|token_type_ids)"),
    re.compile(re.escape(_HF_AUDIO) + r"layers\.\d+\.blocks\.\d+\.attention\.self\.relative_position_index"),
)

_PLACEHOLDERS = {"i": r"(?P<i>\d+)", "j": r"(?P<j>\d+)", "p": r"(?P<p>[A-Za-z_]+)", "rest": r"(?P<rest>.+)"}


def _pattern(template: str) -> re.Pattern:
    parts = re.split(r"(\{\w+\})", template)
    return re.compile("".join(_PLACEHOLDERS[p[1:-1]] if p.startswith("{") else re.escape(p) for p in parts))


_COMPILED = [(_pattern(src), src, dst) for src, dst in RULES]
_INVERSE = [
    (_pattern(d), src, dst, n) for src, dst in RULES for n, d in enumerate(dst if isinstance(dst, tuple) else (dst,))
]
_IGNORED = [(re.compile(p), reason) for p, reason in IGNORED]


@dataclass
class Conversion:
    """What a conversion did: every source tensor and every model tensor is accounted for."""

    state_dict: dict[str, Any]
    ignored: dict[str, str] = field(default_factory=dict)  # LAION key → reason
    unexpected: list[str] = field(default_factory=list)  # LAION keys with no rule
    missing: list[str] = field(default_factory=list)  # ClapModel keys nothing filled
    rebuilt: list[str] = field(default_factory=list)  # ClapModel buffers kept from initialisation
    shape_mismatch: list[str] = field(default_factory=list)

    @property
    def problems(self) -> bool:
        return bool(self.unexpected or self.missing or self.shape_mismatch)

    def report(self) -> dict[str, Any]:
        """Summary for ``describe()``: counts, and full key lists where something did not map."""
        reasons: dict[str, int] = {}
        for reason in self.ignored.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        return {
            "mapped": len(self.state_dict),
            "ignored": reasons,
            "rebuilt": len(self.rebuilt),
            "unexpected": self.unexpected,
            "missing": self.missing,
            "shape_mismatch": self.shape_mismatch,
        }


def laion_to_hf(state_dict: dict[str, Any]) -> Conversion:
    """Rename LAION-CLAP tensors to ``ClapModel`` names (``module.`` prefixes already stripped)."""
    result = Conversion(state_dict={})
    for key, value in state_dict.items():
        for pattern, _src, dst in _COMPILED:
            match = pattern.fullmatch(key)
            if match:
                if isinstance(dst, tuple):  # fused qkv → query, key, value (equal thirds, dim 0)
                    for target, chunk in zip(dst, value.chunk(3, dim=0)):
                        result.state_dict[target.format(**match.groupdict())] = chunk.clone()
                else:
                    result.state_dict[dst.format(**match.groupdict())] = value
                break
        else:
            reason = next((r for p, r in _IGNORED if p.fullmatch(key)), None)
            if reason:
                result.ignored[key] = reason
            else:
                result.unexpected.append(key)
    return result


def hf_to_laion(state_dict: dict[str, Any]) -> dict[str, Any]:
    """The inverse renaming (query/key/value re-fused into ``qkv``): ClapModel names → LAION names."""
    import torch

    out: dict[str, Any] = {}
    fused: dict[str, list] = {}
    for key, value in state_dict.items():
        for pattern, src, dst, part in _INVERSE:
            match = pattern.fullmatch(key)
            if match:
                name = src.format(**match.groupdict())
                if isinstance(dst, tuple):
                    fused.setdefault(name, [None, None, None])[part] = value
                else:
                    out[name] = value
                break
        else:
            raise KeyError(f"no LAION name for ClapModel tensor {key!r}")
    for name, parts in fused.items():
        out[name] = torch.cat(parts, dim=0)
    return out


def read_checkpoint(path: str | Path, trust: bool = False) -> dict[str, Any]:
    """The tensors of a LAION-style ``.pt``: ``state_dict`` if present, ``module.`` prefixes removed.

    Loads with ``weights_only=True`` (no arbitrary code from the pickle) unless ``trust`` is set.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise BackboneError(f"LAION-CLAP checkpoint {str(path)!r} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=not trust, mmap=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors come in many types
        hint = "" if trust else " (if you trust this file, set trust_checkpoint: true to unpickle it fully)"
        raise BackboneError(f"cannot read LAION-CLAP checkpoint {path}: {err}{hint}") from err
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        raise BackboneError(f"{path} holds no state_dict (found {type(checkpoint).__name__})")
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}


def convert_into(model: Any, laion_state: dict[str, Any], strict: bool = True, where: str = "") -> Conversion:
    """Load LAION tensors into ``model`` (a ``ClapModel``), accounting for every key.

    ``strict``: any unexpected, missing or mis-shaped tensor raises :class:`BackboneError` listing
    them all; otherwise they are warned about and the rest is loaded (missing ones keep their
    random initialisation — the report says which).
    """
    result = laion_to_hf(laion_state)
    expected = model.state_dict()
    for key in list(result.state_dict):
        if key not in expected:
            result.unexpected.append(key)
            del result.state_dict[key]
        elif tuple(result.state_dict[key].shape) != tuple(expected[key].shape):
            have, want = tuple(result.state_dict.pop(key).shape), tuple(expected[key].shape)
            result.shape_mismatch.append(f"{key}: checkpoint {have} vs model {want}")
    for key in expected:
        if key not in result.state_dict:
            (result.rebuilt if any(p.fullmatch(key) for p in REBUILT) else result.missing).append(key)
    if result.problems:
        hint = ""
        if any("mel_conv2d" in k or "fusion_model" in k for k in result.unexpected + result.missing):
            hint = " (fusion tensors differ: check audio_config.enable_fusion against the checkpoint)"
        message = (
            f"{where}LAION-CLAP checkpoint does not fit ClapModel{hint}: "
            f"unexpected {result.unexpected}, missing {result.missing}, shape mismatch {result.shape_mismatch}"
        )
        if strict:
            raise BackboneError(message + " — fix config, or set strict: false to load the rest")
        warnings.warn(message, stacklevel=2)
    model.load_state_dict(result.state_dict, strict=False)
    return result


