"""Reference outputs of LAION-CLAP's own inference path, for tests/test_parity_clap.py.

Runs in a throw-away venv with ``laion_clap`` (see requirements.txt and README.md), never in the project's:

    python tests/golden/laion_clap/make_golden.py --emodb ../shared/data/real/emodb_sample --out tests/golden/laion_clap

For fusion and non-fusion HTSAT-tiny it writes the DDP-style checkpoint of :mod:`weights` (seeded random
weights, LAION key layout), loads it with ``CLAP_Module(enable_fusion=..., amodel="HTSAT-tiny").load_ckpt``
and embeds the EmoDB utterances in :data:`ITEMS` with ``get_audio_embedding_from_filelist`` — LAION's
documented path: ``librosa.load(f, sr=48000)`` (soxr_hq), int16 quantisation, ``get_audio_features``
(repeatpad; fusion: ``data_truncating="fusion"``, non-fusion: ``rand_trunc``). ``np.random.seed(CROP_SEED)``
is called before every item, so the fusion crops of inputs > 10 s are those that a fresh
``np.random.RandomState(CROP_SEED)`` draws (what ``ClapBackbone`` does per item). Long inputs are
EmoDB utterances concatenated at 16 kHz and written as 16-bit WAV (exact: the sources are 16-bit).

Outputs ``golden.npz``: per model, ``<model>_projection`` (normalised 512-d, = get_audio_embedding) and
``<model>_encoder`` (the 768-d ``encode_audio(...)["embedding"]`` before ``audio_projection``), float16;
``text_ids``/``text_mask`` and ``<model>_text`` (``get_text_embedding`` of those token ids).

The hub is never reached: the tokenizers that ``laion_clap.training.data`` loads at import and
``CLAP_Module`` loads at init are replaced by ``None`` (only token ids are used here), and
``RobertaModel.from_pretrained("roberta-base")`` builds ``RobertaModel(RobertaConfig(**weights.TEXT))``.
Where torchvision/torchaudio are not importable, ``--stub`` installs minimal stand-ins (see README).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import weights

CROP_SEED = 0
# name → EmoDB files concatenated (16 kHz); > 10 s inputs take the fusion model's is_longer path
ITEMS = {
    "03a01Fa": ["03a01Fa.wav"],
    "03a02Wb": ["03a02Wb.wav"],
    "09b03Ed": ["09b03Ed.wav"],
    "long_10s": ["03b03Tc.wav", "09a05Ed.wav"],
    "long_15s": ["03b03Tc.wav", "09a05Ed.wav", "03b02Tb.wav"],
}
TEXT_IDS = [[0, 5, 17, 33, 2, 1, 1, 1], [0, 40, 41, 42, 43, 44, 45, 2]]


def _stubs() -> None:
    """Stand-ins for the torchvision/torchaudio names laion_clap imports (README: what each is)."""
    import types

    import torch

    tv = types.ModuleType("torchvision")
    tv.datasets = types.ModuleType("torchvision.datasets")
    tf = tv.transforms = types.ModuleType("torchvision.transforms")
    for name in ("Normalize", "Compose", "RandomResizedCrop", "InterpolationMode", "ToTensor", "CenterCrop"):
        setattr(tf, name, type(name, (), {}))

    class Resize:  # torchvision.transforms.Resize on a tensor: bilinear, antialias=True (torchvision >= 0.17)
        def __init__(self, size):
            self.size = list(size)

        def __call__(self, img):
            out = torch.nn.functional.interpolate(img[None], size=self.size, mode="bilinear", align_corners=False,
                                                  antialias=True)
            return out[0]

    tf.Resize = Resize
    tv.ops = types.ModuleType("torchvision.ops")
    tv.ops.misc = types.ModuleType("torchvision.ops.misc")
    tv.ops.misc.FrozenBatchNorm2d = type("FrozenBatchNorm2d", (torch.nn.Module,), {})
    for mod in (tv, tv.datasets, tf, tv.ops, tv.ops.misc):
        sys.modules[mod.__name__] = mod

    # torchaudio.transforms.MelSpectrogram(norm=None, mel_scale="htk") + AmplitudeToDB(top_db=None), as
    # torchaudio 2.x computes them (Spectrogram: periodic Hann, reflect-padded centred STFT, |.|^2;
    # melscale_fbanks: triangular filters on linspace(0, sr // 2, n_fft // 2 + 1); dB: 10 log10(max(x, 1e-10)))
    ta = types.ModuleType("torchaudio")
    ta.transforms = types.ModuleType("torchaudio.transforms")

    class MelSpectrogram(torch.nn.Module):
        def __init__(self, sample_rate, n_fft, win_length, hop_length, center, pad_mode, power, norm, onesided,
                     n_mels, f_min, f_max):
            super().__init__()
            assert norm is None and power == 2.0 and onesided
            self.args = (n_fft, hop_length, win_length, center, pad_mode)
            hz2mel = lambda f: 2595.0 * math.log10(1.0 + f / 700.0)
            freqs = torch.linspace(0, sample_rate // 2, n_fft // 2 + 1)
            m = torch.linspace(hz2mel(f_min), hz2mel(f_max), n_mels + 2)
            f_pts = 700.0 * (10 ** (m / 2595.0) - 1.0)
            f_diff = f_pts[1:] - f_pts[:-1]
            slopes = f_pts.unsqueeze(0) - freqs.unsqueeze(1)
            down, up = -slopes[:, :-2] / f_diff[:-1], slopes[:, 2:] / f_diff[1:]
            self.fb = torch.max(torch.zeros(1), torch.min(down, up))

        def forward(self, x):
            n_fft, hop, win, center, pad_mode = self.args
            spec = torch.stft(x, n_fft, hop, win, torch.hann_window(win), center=center, pad_mode=pad_mode,
                              normalized=False, onesided=True, return_complex=True).abs().pow(2.0)
            return torch.matmul(spec.transpose(-1, -2), self.fb).transpose(-1, -2)

    class AmplitudeToDB(torch.nn.Module):
        def __init__(self, top_db=None):
            super().__init__()
            assert top_db is None

        def forward(self, x):
            return 10.0 * torch.log10(torch.clamp(x, min=1e-10))

    ta.transforms.MelSpectrogram, ta.transforms.AmplitudeToDB = MelSpectrogram, AmplitudeToDB
    sys.modules["torchaudio"], sys.modules["torchaudio.transforms"] = ta, ta.transforms


def _offline_text() -> None:
    import transformers

    for cls in ("BertTokenizer", "RobertaTokenizer", "BartTokenizer"):
        getattr(transformers, cls).from_pretrained = classmethod(lambda cls, *a, **k: None)
    transformers.RobertaModel.from_pretrained = classmethod(
        lambda cls, *a, **k: transformers.RobertaModel(transformers.RobertaConfig(**weights.TEXT)))


def _write_checkpoint(module, fusion: bool, path: Path) -> None:
    import torch

    state = {k: torch.from_numpy(v) for k, v in weights.laion_state(fusion).items()}
    own = module.model.state_dict()
    learned = set(state)
    # deterministic buffers (STFT kernels, mel filterbank, attn_mask, relative_position_index, position_ids):
    # as LAION's modules built them, as a real checkpoint holds them
    for key, tensor in own.items():
        if key not in learned:
            state[key] = tensor.clone()
    state["text_branch.embeddings.position_ids"] = torch.arange(weights.TEXT["max_position_embeddings"])[None]
    extra = sorted(learned - set(own))
    wrong = [k for k in learned & set(own) if tuple(own[k].shape) != tuple(state[k].shape)]
    assert not extra and not wrong, (extra, wrong)
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--emodb", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--stub", action="store_true", help="stand-ins for torchvision/torchaudio (README)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _offline_text()  # imports transformers first: it probes for torchvision with find_spec
    if args.stub:
        _stubs()
    import laion_clap
    import librosa
    import soundfile as sf
    import torch
    import torch.nn.functional as F
    from laion_clap.training.data import float32_to_int16, get_audio_features, int16_to_float32

    torch.set_num_threads(2)
    out: dict[str, np.ndarray] = {"text_ids": np.array(TEXT_IDS), "text_mask": (np.array(TEXT_IDS) != 1).astype(int)}
    tmp = Path(tempfile.mkdtemp())
    files = {}
    for name, parts in ITEMS.items():
        if len(parts) == 1:
            files[name] = str(args.emodb / parts[0])
        else:
            audio = np.concatenate([sf.read(args.emodb / p, dtype="float32")[0] for p in parts])
            sf.write(tmp / f"{name}.wav", audio, 16000, subtype="PCM_16")
            files[name] = str(tmp / f"{name}.wav")
            out[f"{name}_seconds"] = np.array(len(audio) / 16000)
    for fusion in (True, False):
        tag = "fusion" if fusion else "nonfusion"
        module = laion_clap.CLAP_Module(enable_fusion=fusion, amodel="HTSAT-tiny", device="cpu")
        ckpt = tmp / f"{tag}.pt"
        _write_checkpoint(module, fusion, ckpt)
        module.load_ckpt(str(ckpt), verbose=False)
        model = module.model.eval()
        proj, enc = [], []
        for name, path in files.items():
            np.random.seed(CROP_SEED)
            (documented,) = module.get_audio_embedding_from_filelist([path])  # LAION's documented call
            # the same steps once more, keeping the encoder output (CLAP.get_audio_embedding's body)
            np.random.seed(CROP_SEED)
            wave, _ = librosa.load(path, sr=48000)
            wave = torch.from_numpy(int16_to_float32(float32_to_int16(wave))).float()
            sample = get_audio_features({}, wave, 480000, data_truncating="fusion" if fusion else "rand_trunc",
                                        data_filling="repeatpad", audio_cfg=module.model_cfg["audio_cfg"])
            batch = {k: v.unsqueeze(0) for k, v in sample.items()}
            with torch.no_grad():
                e = model.encode_audio(batch, device="cpu")["embedding"]
                p = F.normalize(model.audio_projection(e), dim=-1)
            assert np.allclose(p[0].numpy(), documented, atol=1e-6), name
            proj.append(documented)
            enc.append(e[0].numpy())
            print(tag, name, "longer" if bool(sample["longer"]) else "short", float(np.linalg.norm(enc[-1])))
        out[f"{tag}_projection"] = np.stack(proj).astype(np.float16)
        out[f"{tag}_encoder"] = np.stack(enc).astype(np.float16)
        ids = torch.tensor(TEXT_IDS)
        with torch.no_grad():
            text = model.get_text_embedding({"input_ids": ids, "attention_mask": (ids != 1).long()})
        out[f"{tag}_text"] = text.numpy().astype(np.float16)
    out["items"] = np.array(list(ITEMS))
    np.savez_compressed(args.out / "golden.npz", **out)
    import importlib.metadata as md

    versions = {p: md.version(p) for p in ("laion_clap", "torch", "numpy", "librosa", "soxr", "transformers",
                                           "torchlibrosa", "soundfile")}
    for p in ("torchvision", "torchaudio"):
        versions[p] = "stub (make_golden.py --stub)" if args.stub else md.version(p)
    meta = {"seed": weights.SEED, "crop_seed": CROP_SEED, "items": ITEMS, "text_ids": TEXT_IDS, "versions": versions}
    (args.out / "golden_meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(versions))


if __name__ == "__main__":
    main()
