# Real-size check (our side): eva_clip loads the random full-size eva_vit_g.pth made by reference.py and must match.
import sys
import time

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[4]))
torch.set_num_threads(2)
from pipeline.features.backbones.base import build_backbone

t = time.time()
bb = build_backbone("eva", {"type": "eva_clip", "source": "/tmp/eva_full", "precision": "fp32", "device": "cpu"})
print("load s", round(time.time() - t, 1), bb.describe()["geometry"], bb.describe()["load_report"])
frame = np.load("/tmp/eva_frames.npy")[1]
t = time.time()
_, last = bb.forward([frame])
print("ours forward s", round(time.time() - t, 1), tuple(last.shape))
ref = np.load("/tmp/eva_full/ref.npy"); ours = last[0].numpy()
cos = (ours * ref).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(ref, axis=-1)
print("min cos per token", cos.min(), "max abs", np.abs(ours - ref).max())
