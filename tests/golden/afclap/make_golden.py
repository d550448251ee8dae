"""Reference AF-CLAP audio embeddings for tests/test_afclap.py, computed with NVIDIA's own code.

Run in a throw-away venv (never the project's; see README.md for the pinned requirements), with
Audio Flamingo 2's AF-CLAP sources: NVIDIA/audio-flamingo, branch ``audio_flamingo_2``, commit
7684e9cb48ede9dcf6f6c0a1fbac091702da4bde, folder ``AFClap/my_laion_clap/CLAP/src``::

    python tests/golden/afclap/make_golden.py --afclap-src <checkout>/AFClap/my_laion_clap/CLAP/src \
        --emodb ../shared/data/real/emodb_sample [--write-layout]

What it does, in NVIDIA's code path (``afclap_similarity.py``: ``CLAP_Module(enable_fusion=True,
amodel='HTSAT-afclap', tmodel='t5')``, ``load_afclap_ckpt``, ``get_audio_embedding_from_filelist(files,
sr=16000)``):

1. builds ``CLAP_Module`` at a tiny size. Stubbed, because only weights, not the code path, change:
   ``T5EncoderModel.from_pretrained('google/flan-t5-large')`` → a 1-layer T5 encoder with flan-t5-large's
   ``d_model`` 1024 (so the 1024→512 text projection keeps its real shape);
   ``T5Tokenizer``/``BertTokenizer``/``RobertaTokenizer``/``BartTokenizer.from_pretrained`` (hub downloads at
   import and init, text only) → None (text is never embedded here); ``create_htsat_model`` →
   NVIDIA's own ``HTSAT_Swin_Transformer`` with AF-CLAP's arguments except the widths (embed_dim 8,
   depths [2,2,2,2], heads [1,2,4,8] instead of 256, [2,2,12,2], [4,8,16,32]); ``embed_dim`` of
   ``HTSAT-afclap.json`` 2048 → 64 to match. The front end (16 kHz, n_fft 1024, hop 160, 64 mels,
   50–8000 Hz, 10-s clips, fusion aff_2d, int16 quantisation, repeat-padding) is theirs, unchanged.
   Modules imported only for training (h5py, webdataset, braceexpand, wget) are not needed at
   inference; the real packages are installed all the same (requirements.txt).
2. records / checks ``layout.json`` (key → shape, dtype of that model's state_dict);
3. fills it with :mod:`afclap_weights` (numpy seed), keeping the model's own deterministic
   front-end buffers (STFT kernels, mel filterbank, attention masks), saves a DDP-style
   ``{"state_dict": {"module.…"}}`` checkpoint and reloads it with ``load_afclap_ckpt`` (strict);
4. embeds three real EmoDB utterances, and one > 10 s input (three utterances concatenated, 15.6 s, written to
   a temporary wav) that takes the fusion branch (its random crops drawn after ``np.random.seed(0)``),
   saving the L2-normalised projection (what ``get_audio_embedding_from_filelist`` returns) and the
   pre-projection pooled encoder output (``encode_audio(...)["embedding"]``, captured on the way; what
   AF2's LM is fed, pooled) to ``golden.npz``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import afclap_weights

FILES = ["03a01Fa.wav", "03a01Nc.wav", "09a01Wb.wav"]  # short utterances (< 10 s: repeat-padded)
LONG_FILES = ["03b03Tc.wav", "09a05Ed.wav", "03b02Tb.wav"]  # concatenated: 15.58 s > 10 s (fusion branch)
TINY = json.loads((HERE / "config.json").read_text())


def build(src: Path):
    import torch
    import transformers

    sys.path.insert(0, str(src))
    tiny_t5 = transformers.T5Config(vocab_size=64, d_model=1024, d_kv=16, d_ff=32, num_layers=1, num_heads=2,
                                    feed_forward_proj="gated-gelu", relative_attention_num_buckets=8)
    transformers.T5EncoderModel.from_pretrained = classmethod(lambda cls, *a, **k: cls(tiny_t5))
    # tokenizers are fetched from the hub at import (training/data.py) and in CLAP_Module.__init__;
    # they only tokenise text, which this script never embeds
    for tokenizer in ("T5Tokenizer", "BertTokenizer", "RobertaTokenizer", "BartTokenizer"):
        getattr(transformers, tokenizer).from_pretrained = classmethod(lambda cls, *a, **k: None)

    import laion_clap  # NVIDIA's copy (AFClap/my_laion_clap/CLAP/src/laion_clap)
    from clap_module import factory, htsat
    from clap_module import model as clap_model

    audio = TINY["htsat"]

    def tiny_htsat(audio_cfg, enable_fusion=False, fusion_type="None"):
        assert audio_cfg.model_name == "afclap"
        return htsat.HTSAT_Swin_Transformer(
            spec_size=256, patch_size=4, patch_stride=(4, 4), num_classes=audio_cfg.class_num,
            embed_dim=audio["embed_dim"], depths=audio["depths"], num_heads=audio["num_heads"], window_size=8,
            config=audio_cfg, enable_fusion=enable_fusion, fusion_type=fusion_type,
        )

    clap_model.create_htsat_model = tiny_htsat
    factory._MODEL_CONFIGS["HTSAT-afclap"]["embed_dim"] = audio["embed_dim"] * 2 ** (len(audio["depths"]) - 1)
    torch.manual_seed(0)
    module = laion_clap.CLAP_Module(enable_fusion=True, amodel="HTSAT-afclap", tmodel="t5", device="cpu")
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--afclap-src", type=Path, required=True)
    parser.add_argument("--emodb", type=Path, default=HERE.parents[3] / "shared" / "data" / "real" / "emodb_sample")
    parser.add_argument("--write-layout", action="store_true", help="record layout.json instead of checking it")
    args = parser.parse_args()

    import soundfile as sf
    import torch

    module = build(args.afclap_src)
    own = module.model.state_dict()
    layout = {k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in own.items()}
    if args.write_layout:
        afclap_weights.LAYOUT.write_text(json.dumps(layout, indent=0) + "\n")
    recorded = json.loads(afclap_weights.LAYOUT.read_text())
    assert recorded == layout, "layout.json differs from the state_dict NVIDIA's code builds"

    weights = afclap_weights.make_state_dict()
    state = {}
    for key, value in weights.items():
        if any(part in key for part in afclap_weights.FRONTEND_BUFFERS):
            state[key] = own[key]  # the reference's own deterministic buffers
        else:
            state[key] = torch.from_numpy(value)
            if key.endswith("relative_position_index"):  # numpy's Swin index is theirs
                assert torch.equal(state[key], own[key]), key
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "epoch_16.pt"
        torch.save({"epoch": 16, "state_dict": {f"module.{k}": v for k, v in state.items()}}, ckpt)
        module.load_afclap_ckpt(ckpt=str(ckpt))  # strict=True inside

        captured = []
        module.model.audio_branch.register_forward_hook(lambda m, i, out: captured.append(out["embedding"].detach()))

        def embed(paths):
            captured.clear()
            proj = module.get_audio_embedding_from_filelist([str(p) for p in paths], sr=16000, use_tensor=True)
            return proj.detach().numpy(), torch.cat(captured).numpy()

        np.random.seed(0)
        short_proj, short_enc = embed([args.emodb / f for f in FILES])
        waves = [sf.read(args.emodb / f, dtype="float32")[0] for f in LONG_FILES]
        long_wav = Path(tmp) / "long.wav"
        sf.write(long_wav, np.concatenate(waves), 16000, subtype="FLOAT")
        np.random.seed(0)
        long_proj, long_enc = embed([long_wav])
        long_seconds = sum(len(w) for w in waves) / 16000
        assert long_seconds > 10, long_seconds

    np.savez_compressed(
        HERE / "golden.npz",
        files=np.array(FILES), long_files=np.array(LONG_FILES),
        projection=short_proj.astype(np.float32), encoder=short_enc.astype(np.float32),
        long_projection=long_proj.astype(np.float32), long_encoder=long_enc.astype(np.float32),
    )
    print(f"golden.npz: short {short_proj.shape} {short_enc.shape}; long ({long_seconds:.2f} s) {long_proj.shape}")


if __name__ == "__main__":
    main()
