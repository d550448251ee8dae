"""Deterministic random LAION-CLAP HTSAT-tiny weights, in LAION's own key layout (numpy only).

Used by ``make_golden.py`` (throw-away venv with ``laion_clap``: loaded with ``CLAP_Module.load_ckpt``)
and by ``tests/test_parity_clap.py`` (our ``checkpoint:`` path), so both sides load the same tensors.

Every tensor is drawn from ``np.random.default_rng([SEED, crc32(key)])``: a tensor's values depend only on
its name and shape, not on the order keys are listed in. Only *learned* tensors (parameters and
BatchNorm statistics) are generated. Deterministic buffers that LAION's modules compute at construction
— torchlibrosa's STFT kernels and mel filterbank, the shifted-window ``attn_mask``, the
``relative_position_index`` and RoBERTa's ``position_ids`` — are not: ``make_golden.py`` takes them from
LAION's freshly built model (as a real checkpoint holds them), and ``ClapModel`` rebuilds its own.

Architecture: ``HTSAT-tiny`` as ``laion_clap.clap_module.htsat.create_htsat_model`` builds it (embed 96,
depths 2-2-6-2, heads 4-8-16-32, window 8, spec 256, patch 4, 527 AudioSet classes), fusion ``aff_2d``
when ``fusion``; joint embedding 512 (``HTSAT-tiny.json``: 768-d audio, ``Sequential(Linear, ReLU,
Linear)`` projections); the text branch is a small RoBERTa (:data:`TEXT`, hidden 768 because LAION's
``text_projection`` takes 768 inputs) instead of ``roberta-base``.
"""

from __future__ import annotations

import zlib

import numpy as np

SEED = 20261202
EMBED, DEPTHS, HEADS, WINDOW, PATCH, MELS, CLASSES, JOINT = 96, (2, 2, 6, 2), (4, 8, 16, 32), 8, 4, 64, 527, 512
TEXT = {"vocab_size": 64, "hidden_size": 768, "num_hidden_layers": 1, "num_attention_heads": 12,
        "intermediate_size": 64, "max_position_embeddings": 80, "type_vocab_size": 1, "layer_norm_eps": 1e-5,
        "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2}
# word/position embeddings this small make RoBERTa's first LayerNorm sensitive to its eps (1e-5 vs 1e-12)
TEXT_EMBED_STD = 0.003


def _bn(prefix: str, n: int) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{prefix}.{p}", (n,)) for p in ("weight", "bias", "running_mean", "running_var")] + [
        (f"{prefix}.num_batches_tracked", ())
    ]


def _lin(prefix: str, n_out: int, n_in: int, bias: bool = True) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{prefix}.weight", (n_out, n_in))] + ([(f"{prefix}.bias", (n_out,))] if bias else [])


def _ln(prefix: str, n: int) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{prefix}.weight", (n,)), (f"{prefix}.bias", (n,))]


def laion_shapes(fusion: bool) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of every learned tensor of LAION's ``CLAP`` (HTSAT-tiny + the small RoBERTa)."""
    a = "audio_branch."
    out = _bn(a + "bn0", MELS)
    out += [(a + "patch_embed.proj.weight", (EMBED, 1, PATCH, PATCH)), (a + "patch_embed.proj.bias", (EMBED,))]
    out += _ln(a + "patch_embed.norm", EMBED)
    if fusion:  # PatchEmbed.mel_conv2d + AFF(channels=96, r=4, type="2D")
        out += [(a + "patch_embed.mel_conv2d.weight", (EMBED, 1, PATCH, PATCH * 3)),
                (a + "patch_embed.mel_conv2d.bias", (EMBED,))]
        inter = EMBED // 4
        for branch, (c1, b1, c2, b2) in (("local_att", (0, 1, 3, 4)), ("global_att", (1, 2, 4, 5))):
            f = f"{a}patch_embed.fusion_model.{branch}."
            out += [(f"{f}{c1}.weight", (inter, EMBED, 1, 1)), (f"{f}{c1}.bias", (inter,))] + _bn(f"{f}{b1}", inter)
            out += [(f"{f}{c2}.weight", (EMBED, inter, 1, 1)), (f"{f}{c2}.bias", (EMBED,))] + _bn(f"{f}{b2}", EMBED)
    for i, (depth, heads) in enumerate(zip(DEPTHS, HEADS)):
        dim = EMBED * 2**i
        for j in range(depth):
            b = f"{a}layers.{i}.blocks.{j}."
            out += _ln(b + "norm1", dim)
            out += [(b + "attn.relative_position_bias_table", ((2 * WINDOW - 1) ** 2, heads))]
            out += _lin(b + "attn.qkv", 3 * dim, dim) + _lin(b + "attn.proj", dim, dim)
            out += _ln(b + "norm2", dim) + _lin(b + "mlp.fc1", 4 * dim, dim) + _lin(b + "mlp.fc2", dim, 4 * dim)
        if i < len(DEPTHS) - 1:
            out += _lin(f"{a}layers.{i}.downsample.reduction", 2 * dim, 4 * dim, bias=False)
            out += _ln(f"{a}layers.{i}.downsample.norm", 4 * dim)
    width = EMBED * 2 ** (len(DEPTHS) - 1)  # 768
    out += _ln(a + "norm", width)
    out += [(a + "tscam_conv.weight", (CLASSES, width, 2, 3)), (a + "tscam_conv.bias", (CLASSES,))]
    out += _lin(a + "head", CLASSES, CLASSES)
    for tower in ("audio", "text"):
        out += _lin(f"{tower}_projection.0", JOINT, width) + _lin(f"{tower}_projection.2", JOINT, JOINT)
        out += _lin(f"{tower}_transform.sequential.0", JOINT, JOINT) + _lin(f"{tower}_transform.sequential.3", JOINT, JOINT)
    out += [("logit_scale_a", ()), ("logit_scale_t", ())]
    t, h, n = "text_branch.", TEXT["hidden_size"], TEXT["intermediate_size"]
    out += [(t + "embeddings.word_embeddings.weight", (TEXT["vocab_size"], h)),
            (t + "embeddings.position_embeddings.weight", (TEXT["max_position_embeddings"], h)),
            (t + "embeddings.token_type_embeddings.weight", (TEXT["type_vocab_size"], h))]
    out += _ln(t + "embeddings.LayerNorm", h)
    for k in range(TEXT["num_hidden_layers"]):
        e = f"{t}encoder.layer.{k}."
        for part in ("query", "key", "value"):
            out += _lin(f"{e}attention.self.{part}", h, h)
        out += _lin(e + "attention.output.dense", h, h) + _ln(e + "attention.output.LayerNorm", h)
        out += _lin(e + "intermediate.dense", n, h) + _lin(e + "output.dense", h, n) + _ln(e + "output.LayerNorm", h)
    out += _lin(t + "pooler.dense", h, h)
    return out


def value(key: str, shape: tuple[int, ...], seed: int = SEED) -> np.ndarray:
    """The tensor for ``key``: a function of (seed, key, shape) only."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return np.array(1000, np.int64)
    if key.startswith("logit_scale"):
        return np.array(np.log(1 / 0.07), np.float32)
    if key.startswith("audio_branch.bn0."):  # log-mel dB statistics, roughly those of speech
        if leaf == "running_mean":
            return rng.uniform(-40, -10, shape).astype(np.float32)
        if leaf == "running_var":
            return rng.uniform(100, 500, shape).astype(np.float32)
    if leaf == "running_mean":
        return rng.normal(0, 0.2, shape).astype(np.float32)
    if leaf == "running_var":
        return rng.uniform(0.5, 2.0, shape).astype(np.float32)
    if "embeddings." in key and key.endswith("_embeddings.weight"):
        return rng.normal(0, TEXT_EMBED_STD, shape).astype(np.float32)
    if leaf == "relative_position_bias_table":
        return rng.normal(0, 0.5, shape).astype(np.float32)
    if len(shape) == 1 and leaf == "weight":  # LayerNorm / BatchNorm scales
        return (1 + rng.normal(0, 0.1, shape)).astype(np.float32)
    if leaf == "bias":
        return rng.normal(0, 0.05, shape).astype(np.float32)
    fan_in = int(np.prod(shape[1:]))
    return rng.normal(0, fan_in**-0.5, shape).astype(np.float32)


def laion_state(fusion: bool, seed: int = SEED) -> dict[str, np.ndarray]:
    """Every learned tensor of the model, by LAION name."""
    return {key: value(key, shape, seed) for key, shape in laion_shapes(fusion)}
