# Real-size check (reference side): create_eva_vit_g's exact VisionTransformer (1408 x 39, 16 heads, mlp 4.3637) with
# random weights, saved at 224 px like eva_vit_g.pth, rebuilt at 448 via interpolate_pos_embed, one RAVDESS frame.
import importlib.util
import sys
import time
import types
from functools import partial

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision import transforms
from torchvision.transforms.functional import InterpolationMode

torch.set_num_threads(2)
d = types.ModuleType("minigpt4.common.dist_utils"); d.download_cached_file = None
for n in ("minigpt4", "minigpt4.common"): sys.modules[n] = types.ModuleType(n)
sys.modules["minigpt4.common.dist_utils"] = d
spec = importlib.util.spec_from_file_location("eva_vit", "/tmp/eva_vit.py"); ev = importlib.util.module_from_spec(spec); spec.loader.exec_module(ev)
def build(img):
    return ev.VisionTransformer(img_size=img, patch_size=14, use_mean_pooling=False, embed_dim=1408, depth=39,
        num_heads=1408//88, mlp_ratio=4.3637, qkv_bias=True, drop_path_rate=0.0, norm_layer=partial(nn.LayerNorm, eps=1e-6))
torch.manual_seed(0)
src = build(224)
with torch.no_grad():
    for p in src.parameters(): p.add_(torch.randn_like(p) * 0.02)
sd = src.state_dict(); torch.save(sd, "/tmp/eva_full/eva_vit_g.pth"); del src
print("keys", len(sd), "params", sum(v.numel() for v in sd.values()))
model = build(448); ev.interpolate_pos_embed(model, sd); print(model.load_state_dict(sd, strict=True)); del sd
model.eval()
tf = transforms.Compose([transforms.Resize((448, 448), interpolation=InterpolationMode.BICUBIC), transforms.ToTensor(),
    transforms.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))])
frame = np.load("/tmp/eva_frames.npy")[1]
x = tf(Image.fromarray(frame).convert("RGB"))[None]
t = time.time()
with torch.no_grad():
    out = nn.functional.layer_norm(model(x).float(), (1408,), eps=1e-5)  # ln_vision, unit weights
print("ref forward s", round(time.time() - t, 1), tuple(out.shape))
np.save("/tmp/eva_full/ref.npy", out[0].numpy())
