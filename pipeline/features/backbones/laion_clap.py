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

Text towers that ``ClapModel`` cannot hold are skipped explicitly, never half-loaded. Audio Flamingo
2's AF-CLAP (NVIDIA/audio-flamingo, branch ``audio_flamingo_2``, ``AFClap/my_laion_clap/.../model.py``
with ``tmodel='t5'``) has a ``T5EncoderModel`` text branch (flan-t5-large, 1024-d, mean-pooled over
all 77 token positions) and ``text_projection = Sequential(Linear(1024, 512), ReLU, Linear(512, 512))``;
renamed into ``ClapModel`` its ~200 T5 tensors would all be "unexpected", the 1024→512 projection a
shape mismatch and the ~200 RoBERTa tensors "missing". :func:`text_branch_kind` tells the branches
apart by their tensor names; with ``text_tower="auto"`` a non-RoBERTa (or absent) text branch is
skipped: every text-side checkpoint tensor (``text_branch.*``, ``text_projection.*``,
``text_transform.*``, CLIP-style ``token_embedding``/``positional_embedding``/``ln_final``) is
recorded as skipped with the reason, ``ClapModel``'s ``text_model.*``/``text_projection.*`` stay
random and are recorded as such (not "missing"), and the report's ``text_tower`` says so — the
backbone then refuses zero-shot. The audio branch stays strict either way: any unexpected, missing or
mis-shaped audio tensor is still an error listing them. (Mapping the T5 tower would need a separate
``T5EncoderModel``, the flan-t5 SentencePiece tokenizer and AF-CLAP's unmasked mean pooling; AF2
feeds its LM audio only, so the audio branch is what this project needs from AF-CLAP.)
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
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

# LAION's text branches (model.py: CLAP.__init__ by text_cfg.model_type), told apart by tensor names.
# "roberta" (also LAION's "bert": BertModel has the same names) is the one ClapModel holds.
TEXT_BRANCH_KINDS: list[tuple[str, re.Pattern]] = [
    ("t5", re.compile(r"text_branch\.(shared\.weight|encoder\.block\.\d+\..+|encoder\.final_layer_norm\..+)")),
    ("bart", re.compile(r"text_branch\.(encoder|decoder)\.layers\.\d+\..+")),
    ("transformer", re.compile(r"text_branch\.resblocks\.\d+\..+|token_embedding\.weight|positional_embedding")),
    ("roberta", re.compile(r"text_branch\.embeddings\.word_embeddings\.weight")),
]
TEXT_TOWER_NAMES = {"t5": "T5EncoderModel (AF-CLAP: flan-t5-large)", "bart": "BartModel",
                    "transformer": "CLIP-style transformer", "roberta": "RobertaModel", "none": "none"}
# checkpoint tensors of the text side, and ClapModel tensors of the text side
_TEXT_SIDE = re.compile(
    r"(text_branch|text_projection|text_transform)\..+|token_embedding\.weight|positional_embedding|ln_final\..+"
)
_HF_TEXT_SIDE = re.compile(r"(text_model|text_projection)\..+")

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
    # how the text tower was treated: kind, status ("mapped" or "skipped"), reason, counts
    text_tower: dict[str, Any] = field(default_factory=lambda: {"kind": "roberta", "status": "mapped"})

    @property
    def problems(self) -> bool:
        return bool(self.unexpected or self.missing or self.shape_mismatch)

    def report(self) -> dict[str, Any]:
        """Summary for ``describe()``: counts, and full key lists where something did not map."""
        return {
            "mapped": len(self.state_dict),
            "ignored": dict(Counter(self.ignored.values())),
            "rebuilt": len(self.rebuilt),
            "unexpected": self.unexpected,
            "missing": self.missing,
            "shape_mismatch": self.shape_mismatch,
            "text_tower": self.text_tower,
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


def text_branch_kind(laion_state: dict[str, Any]) -> str:
    """Which LAION text branch a checkpoint holds: ``t5``, ``bart``, ``transformer``, ``roberta`` or
    ``none`` (no text-branch tensors at all), from its tensor names."""
    for kind, pattern in TEXT_BRANCH_KINDS:
        if any(pattern.fullmatch(key) for key in laion_state):
            return kind
    return "none"


def text_tower_plan(laion_state: dict[str, Any], text_tower: str = "auto") -> tuple[str, bool]:
    """(the checkpoint's text-branch kind, whether its text tower is skipped) under ``text_tower``:
    the one rule both the model config (a placeholder text model when skipped) and the conversion use."""
    if text_tower not in ("auto", "roberta", "skip"):
        raise ValueError(f"text_tower must be 'auto', 'roberta' or 'skip', not {text_tower!r}")
    kind = text_branch_kind(laion_state)
    return kind, text_tower == "skip" or (text_tower == "auto" and kind != "roberta")


def convert_into(
    model: Any, laion_state: dict[str, Any], strict: bool = True, where: str = "", text_tower: str = "auto"
) -> Conversion:
    """Load LAION tensors into ``model`` (a ``ClapModel``), accounting for every key.

    ``strict``: any unexpected, missing or mis-shaped tensor raises :class:`BackboneError` listing
    them all; otherwise they are warned about and the rest is loaded (missing ones keep their
    random initialisation — the report says which).

    ``text_tower``: ``"auto"`` maps a RoBERTa text branch and skips any other (T5, BART, CLIP-style)
    or absent one; ``"roberta"`` always maps (a non-RoBERTa branch then fails, listing the keys);
    ``"skip"`` always skips. Skipped text tensors are recorded in ``ignored`` with the reason and
    ``ClapModel``'s text tensors are left random, recorded in ``text_tower`` (never "missing").
    """
    kind, skip = text_tower_plan(laion_state, text_tower)
    tower: dict[str, Any] = {"kind": kind, "status": "mapped"}
    if skip:
        reason = (
            f"text tower skipped: checkpoint text branch is {TEXT_TOWER_NAMES[kind]}, which ClapModel "
            "(RoBERTa text model) cannot hold" if kind != "none" else "text tower skipped: checkpoint has no text branch"
        )
        if text_tower == "skip":
            reason = f"text tower skipped (text_tower: skip; checkpoint text branch: {TEXT_TOWER_NAMES[kind]})"
        text_keys = [k for k in laion_state if _TEXT_SIDE.fullmatch(k)]
        laion_state = {k: v for k, v in laion_state.items() if not _TEXT_SIDE.fullmatch(k)}
        left_random = [k for k in model.state_dict() if _HF_TEXT_SIDE.fullmatch(k)]
        tower = {
            "kind": kind,
            "status": "skipped",
            "reason": reason + "; zero-shot disabled",
            "checkpoint_tensors_skipped": len(text_keys),
            "model_tensors_left_random": len(left_random),
        }
    result = laion_to_hf(laion_state)
    result.text_tower = tower
    if skip:
        result.ignored.update({k: tower["reason"] for k in text_keys})
    expected = model.state_dict()
    if skip:  # the text side of ClapModel is not expected from this checkpoint
        expected = {k: v for k, v in expected.items() if k not in left_random}
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
        hints = []
        if any("mel_conv2d" in k or "fusion_model" in k for k in result.unexpected + result.missing):
            hints.append("fusion tensors differ: check audio_config.enable_fusion against the checkpoint")
        if kind not in ("roberta", "none") and not skip:
            hints.append(f"the checkpoint's text branch is {TEXT_TOWER_NAMES[kind]}: use text_tower: auto or skip")
        hint = f" ({'; '.join(hints)})" if hints else ""
        message = (
            f"{where}LAION-CLAP checkpoint does not fit ClapModel{hint}: "
            f"unexpected {result.unexpected}, missing {result.missing}, shape mismatch {result.shape_mismatch}"
        )
        if strict:
            raise BackboneError(message + " — fix config, or set strict: false to load the rest")
        warnings.warn(message, stacklevel=2)
    model.load_state_dict(result.state_dict, strict=False)
    return result


