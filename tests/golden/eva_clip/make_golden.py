"""Golden outputs of MiniGPT-v2's own EVA ViT (``minigpt4/models/eva_vit.py``) for ``tests/test_parity_eva.py``.

Two steps (README.md beside this file):

1. ``frames`` — in the project's venv: the shared RAVDESS clip decoded as the segment stage does
   (``pipeline.core.media.decode_frames``, 2 fps, 224 px letterboxed), first 4 frames → ``--out`` (.npy).
2. ``reference`` — in a throw-away venv (torch + torchvision + timm 0.6.13, never the project's .venv):
   imports the original ``eva_vit.py`` (``--eva-vit``; its only MiniGPT import, ``download_cached_file``,
   is given a stand-in: nothing is downloaded), builds a tiny ``VisionTransformer`` at 28 px with EVA-g's
   settings but small sizes, spreads its weights (seed 20261202), saves its ``state_dict()`` with
   ``torch.save`` (``eva_vit_tiny.pth``: the key layout of ``eva_vit_g.pth``), then does what
   ``create_eva_vit_g`` does at 56 px (``VisionTransformer(img_size=56, ...)``, ``torch.load``,
   ``interpolate_pos_embed``, ``load_state_dict``; here strict) and runs every frame through MiniGPT-v2's
   ``Blip2ImageEvalProcessor`` transform, ``get_intermediate_layers`` (every block), ``forward`` and its
   ``ln_vision`` (MiniGPT's fp32 ``LayerNorm``: once freshly built, as MiniGPT-v2 keeps it, once with spread
   weights saved in ``ln_vision.pth``), and ``minigpt_v2.encode_img``'s token split (CLS; patches merged 4 by 4).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np

SEED = 20261202
TINY = {"patch_size": 14, "embed_dim": 32, "depth": 2, "num_heads": 2, "mlp_ratio": 4.3637}  # EVA-g: 1408, 39, 16
CKPT_SIZE, RUN_SIZE = 28, 56  # as eva_vit_g.pth's 224 run at MiniGPT-v2's 448: the position grid is resized
FPS, SIZE, N_FRAMES = 2, 224, 4


def dump_frames(out: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from pipeline.core.media import decode_frames
    from tests.conftest import RAVDESS_MP4

    frames = decode_frames(RAVDESS_MP4, fps=FPS, size=SIZE)[:N_FRAMES]
    np.save(out, frames)
    print(out, frames.shape, hashlib.sha256(frames.tobytes()).hexdigest())


def reference(eva_vit: Path, frames_file: Path, out: Path) -> None:
    from functools import partial

    import torch
    from PIL import Image
    from torch import nn
    from torchvision import transforms
    from torchvision.transforms.functional import InterpolationMode

    # eva_vit.py's one MiniGPT import; create_eva_vit_g's download is replaced by loading our file
    dist_utils = types.ModuleType("minigpt4.common.dist_utils")
    dist_utils.download_cached_file = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no downloads"))
    for name in ("minigpt4", "minigpt4.common"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["minigpt4.common.dist_utils"] = dist_utils
    spec = importlib.util.spec_from_file_location("eva_vit", eva_vit)
    ev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ev)

    class LayerNorm(nn.LayerNorm):  # minigpt4/models/base_model.py, verbatim
        """Subclass torch's LayerNorm to handle fp16."""

        def forward(self, x: torch.Tensor):
            orig_type = x.dtype
            ret = super().forward(x.type(torch.float32))
            return ret.type(orig_type)

    def build(img_size):  # create_eva_vit_g's arguments, tiny sizes (drop_path_rate 0: eval)
        return ev.VisionTransformer(img_size=img_size, use_mean_pooling=False, qkv_bias=True, drop_path_rate=0.0,
                                    norm_layer=partial(nn.LayerNorm, eps=1e-6), use_checkpoint=False, **TINY)

    def spread(module, seed):
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in module.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * 0.3)

    torch.manual_seed(0)
    out.mkdir(parents=True, exist_ok=True)
    src = build(CKPT_SIZE)
    spread(src, SEED)
    torch.save(src.state_dict(), out / "eva_vit_tiny.pth")
    ln_spread = LayerNorm(TINY["embed_dim"])
    spread(ln_spread, SEED + 1)
    torch.save({f"ln_vision.{k}": v for k, v in ln_spread.state_dict().items()}, out / "ln_vision.pth")
    ln_unit = LayerNorm(TINY["embed_dim"])

    model = build(RUN_SIZE)  # create_eva_vit_g: build at the run size, load, interpolate the positions
    state_dict = torch.load(out / "eva_vit_tiny.pth", map_location="cpu")
    ev.interpolate_pos_embed(model, state_dict)
    incompatible = model.load_state_dict(state_dict, strict=True)
    model.eval()

    transform = transforms.Compose([  # Blip2ImageEvalProcessor(image_size=RUN_SIZE), minigpt4/processors/blip_processors.py
        transforms.Resize((RUN_SIZE, RUN_SIZE), interpolation=InterpolationMode.BICUBIC),
        transforms.ToTensor(),
        transforms.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    ])
    frames = np.load(frames_file)
    blocks, last_unit, last_ln, cls_tokens, patch_tokens = [], [], [], [], []
    with torch.no_grad():
        for frame in frames:
            image = transform(Image.fromarray(frame.astype("uint8")).convert("RGB"))[None]
            blocks.append(torch.cat(model.get_intermediate_layers(image)).numpy())  # [depth, 1 + P, D]
            image_feats = model(image)
            unit, normed = ln_unit(image_feats), ln_spread(image_feats)
            last_unit.append(unit[0].numpy())
            last_ln.append(normed[0].numpy())
            # minigpt_v2.encode_img: CLS token, then the patch tokens merged four by four
            image_embeds = unit[:, 1:, :]
            bs, pn, hs = image_embeds.shape
            cls_tokens.append(unit[0, :1].numpy())
            patch_tokens.append(image_embeds.view(bs, int(pn / 4), int(hs * 4))[0].numpy())
    np.savez_compressed(
        out / "golden.npz", blocks=np.stack(blocks), last_unit=np.stack(last_unit), last_ln=np.stack(last_ln),
        cls=np.stack(cls_tokens), patches=np.stack(patch_tokens),
    )
    import PIL
    import timm
    import torchvision

    meta = {
        "seed": SEED, "tiny": TINY, "checkpoint_size": CKPT_SIZE, "run_size": RUN_SIZE,
        "frames": {"fps": FPS, "size": SIZE, "n": len(frames), "sha256": hashlib.sha256(frames.tobytes()).hexdigest()},
        "eva_vit_sha256": hashlib.sha256(eva_vit.read_bytes()).hexdigest(),
        "load_state_dict": str(incompatible),
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__, "timm": timm.__version__,
                     "numpy": np.__version__, "pillow": PIL.__version__, "python": sys.version.split()[0]},
    }
    (out / "golden_meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("frames")
    f.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("reference")
    r.add_argument("--eva-vit", type=Path, required=True, help="MiniGPT-4's minigpt4/models/eva_vit.py")
    r.add_argument("--frames", type=Path, required=True)
    r.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args()
    if args.cmd == "frames":
        dump_frames(args.out)
    else:
        reference(args.eva_vit, args.frames, args.out)


if __name__ == "__main__":
    main()
