"""Tiny LanguageBind checkpoints and reference outputs made by LanguageBind's own code, for
tests/test_parity_languagebind.py.

Runs in a throw-away venv with LanguageBind's source tree (transformers<5; see requirements.txt and
README.md), never in the project's:

    python tests/golden/languagebind/make_golden.py --languagebind-src <checkout> \
        --emodb ../shared/data/real/emodb_sample --frames ravdess_frames.npy

For each model in :data:`MODELS` it builds ``LanguageBindVideo`` / ``LanguageBindAudio`` from a tiny config
(LanguageBind's published config layout; ``lora_r > 0`` wraps the vision encoder in PEFT as its
``convert_to_lora`` does), spreads the weights (seeded; the default init gives near-constant outputs),
writes it with ``save_pretrained`` (so the checkpoint has exactly the key names LanguageBind's code
writes), together with a CLIP tokenizer of a 514-token byte vocabulary, then computes on real inputs:

* text: ``tokenizer(..., max_length=77, padding="max_length", truncation=True)`` → ``get_text_features``;
* video: ``load_and_transform_video``'s decord branch (``np.linspace(0, n-1, 8, dtype=int)`` of the decoded
  frames, then ``get_video_transform(config)``: /255, OpenAI mean/std, ShortSideScale 224, CenterCrop 224)
  on the real RAVDESS frames as the pipeline's segment stage decodes them (``--frames``: 10 fps, 224 px,
  written by the project's ``decode_frames``), with ``RandomHorizontalFlipVideo`` taken out of the
  transform (a random flip at inference); → ``get_image_features``, plus the per-frame projected CLS and
  every layer's CLS mean over frames;
* audio: ``AudioTransform(config.vision_config)`` on the soundfile-read waveform (Kaldi fbank, 112 mels,
  repeat-padded or three random chunks of ``target_length`` frames, ``(x - mean) / (2 std)``) after
  ``np.random.seed(CROP_SEED)`` → ``get_image_features``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CROP_SEED = 0
SEED = 20261202
SENTENCES = ["I am so happy today!", "Why would you do that to me?", "The invoice is attached.",
             "oh... okay, fine."]
AUDIO_ITEMS = {  # name -> EmoDB files concatenated at 16 kHz (the long one takes the three-chunk path)
    "03a01Fa": ["03a01Fa.wav"],
    "03a02Wb": ["03a02Wb.wav"],
    "09b03Ed": ["09b03Ed.wav"],
    "long_12s": ["03b03Tc.wav", "09a05Ed.wav", "03a01Fa.wav"],
}
TEXT = {"vocab_size": 514, "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 2,
            "max_position_embeddings": 77, "bos_token_id": 512, "eos_token_id": 513, "pad_token_id": 513}
VIDEO = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 224,
             "patch_size": 32, "add_time_attn": True, "num_frames": 8, "lora_r": 0, "video_decode_backend": "decord"}
AUDIO = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 224,
             "patch_size": 14, "add_time_attn": False, "num_frames": 1, "lora_r": 0, "num_mel_bins": 112, "target_length": 1036,
             "audio_sample_rate": 16000, "audio_mean": -4.2677393, "audio_std": 4.5689974}
MODELS = {
    "video": ("video", VIDEO),
    "video_lora": ("video", dict(VIDEO, lora_r=2, lora_alpha=16)),
    "audio": ("audio", AUDIO),
    "audio_lora": ("audio", dict(AUDIO, lora_r=2, lora_alpha=8)),
}


def byte_vocab() -> dict[str, int]:
    """CLIP's byte-level vocabulary without merges (open_clip's construction, merges left out)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    chars = [chr(c) for c in cs]
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}


def write_tokenizer(out: Path) -> None:
    (out / "vocab.json").write_text(json.dumps(byte_vocab(), ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n")


def shims() -> None:
    """Names LanguageBind's imports expect from older torchvision/torchaudio (README: why each)."""
    import torchaudio
    import torchvision.transforms._functional_tensor as ft

    sys.modules["torchvision.transforms.functional_tensor"] = ft  # pytorchvideo 0.1.5 imports the old name
    torchaudio.set_audio_backend = lambda backend: None  # removed in torchaudio 2.2; audio is read with soundfile


def spread(model, seed: int) -> None:
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            elif "embedding" in name or "class_embedding" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.25 * torch.randn(p.shape, generator=gen))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--languagebind-src", required=True, type=Path)
    ap.add_argument("--emodb", required=True, type=Path)
    ap.add_argument("--frames", required=True, type=Path, help="uint8 [T, 224, 224, 3] .npy (README)")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    sys.path.insert(0, str(args.languagebind_src))
    shims()
    import soundfile as sf
    import torch
    import transformers
    from languagebind import (
        LanguageBindAudio,
        LanguageBindAudioConfig,
        LanguageBindVideo,
        LanguageBindVideoConfig,
        LanguageBindVideoTokenizer,
    )
    from languagebind.audio.processing_audio import AudioTransform
    from languagebind.video.processing_video import get_video_transform
    from torchvision.transforms._transforms_video import RandomHorizontalFlipVideo

    torch.set_num_threads(1)
    out: dict[str, np.ndarray] = {}
    meta: dict = {"seed": SEED, "crop_seed": CROP_SEED, "sentences": SENTENCES, "audio_items": AUDIO_ITEMS,
                  "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                               "numpy": np.__version__}}
    frames = np.load(args.frames)
    meta["frames_sha256"] = hashlib.sha256(frames.tobytes()).hexdigest()
    clips = {"clip": frames, "short": frames[:5]}  # all 33 frames, and 5 (sampled with repeats)
    waves = {name: np.concatenate([sf.read(args.emodb / f, dtype="float32")[0] for f in files])
             for name, files in AUDIO_ITEMS.items()}
    for i, (name, (kind, vision)) in enumerate(MODELS.items()):
        config_cls, model_cls = ((LanguageBindVideoConfig, LanguageBindVideo) if kind == "video"
                                 else (LanguageBindAudioConfig, LanguageBindAudio))
        config = config_cls(text_config=TEXT, vision_config=vision, projection_dim=24)
        torch.manual_seed(SEED + i)
        model = model_cls(config).eval()
        spread(model, SEED + i)
        target = args.out / name
        target.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(target, safe_serialization=False)  # pytorch_model.bin, as the published repos
        write_tokenizer(target)
        tok = LanguageBindVideoTokenizer.from_pretrained(target)
        tok.save_pretrained(target)  # tokenizer_config.json / special_tokens_map.json, as the published repos
        enc = tok(SENTENCES, max_length=77, padding="max_length", truncation=True, return_tensors="pt")
        with torch.no_grad():
            out[f"{name}_text"] = model.get_text_features(**enc).numpy()
        out["text_ids"] = enc["input_ids"].numpy().astype(np.int32)
        meta[f"{name}_keys"] = len(model.state_dict())
        if kind == "video":
            transform = get_video_transform(config)
            transform.transforms = [t for t in transform.transforms if not isinstance(t, RandomHorizontalFlipVideo)]
            for clip, frames in clips.items():
                # load_and_transform_video's decord branch with the decoder's output swapped for these frames
                ids = np.linspace(0, len(frames) - 1, vision["num_frames"], dtype=int)
                video_data = torch.from_numpy(frames[ids]).permute(3, 0, 1, 2)  # (T, H, W, C) -> (C, T, H, W)
                pixels = transform(video_data)[None]  # [1, C, T, H, W]
                with torch.no_grad():
                    vo = model.vision_model(pixel_values=pixels, output_hidden_states=True)
                    out[f"{name}_{clip}_embed"] = model.visual_projection(vo.pooler_output)[0].numpy()
                    cls = model.vision_model.post_layernorm(vo.last_hidden_state[:, 0])  # [T, D]
                    out[f"{name}_{clip}_frames"] = model.visual_projection(cls).numpy()
                    out[f"{name}_{clip}_layers"] = torch.stack([h[:, 0].mean(0) for h in vo.hidden_states]).numpy()
                meta[f"{clip}_frame_ids"] = ids.tolist()
        else:
            transform = AudioTransform(config.vision_config)
            embeds = []
            for wave in waves.values():
                np.random.seed(CROP_SEED)
                image = transform((torch.from_numpy(wave.copy())[None], 16000))
                with torch.no_grad():
                    embeds.append(model.get_image_features(pixel_values=image[None])[0].numpy())
            out[f"{name}_embed"] = np.stack(embeds)
    np.savez_compressed(args.out / "golden.npz", **out)
    (args.out / "golden_meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print({k: v.shape for k, v in out.items()})


if __name__ == "__main__":
    main()
