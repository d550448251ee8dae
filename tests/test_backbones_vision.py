"""Video backbones (clip_vision, videomae, dlib_face) through their real loading paths.

CLIP and VideoMAE are tiny random checkpoints saved with ``save_pretrained`` and loaded back exactly
like downloaded ones; dlib runs its real shipped models on the shared RAVDESS clip.
"""

import subprocess
import sys

import numpy as np
import pytest

from pipeline.core.errors import ConfigError, BackboneError
from pipeline.features.backbones.base import build_backbone
from pipeline.features.backbones.videomae import clip_spans, sample_indices
from tests import factories
from tests.conftest import ROOT, needs_ravdess, ravdess_frames_at

RNG = np.random.default_rng(0)


def random_frames(n: int, size: int = 40) -> np.ndarray:
    return RNG.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def ravdess_frames():
    return ravdess_frames_at(fps=2)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A full CLIPModel (text + vision towers, projections) and a vision-only CLIPVisionModel."""
    return factories.tiny_clip(tmp_path_factory.mktemp("clip"), tmp_path_factory.mktemp("clipvision"))


@pytest.fixture(scope="module")
def tiny_videomae(tmp_path_factory):
    return factories.tiny_videomae(tmp_path_factory.mktemp("videomae"))


def test_importing_video_backbones_is_cheap():
    code = (
        "import sys, pipeline.features.backbones.clip_vision, pipeline.features.backbones.videomae, pipeline.features.backbones.dlib_face; "
        "assert not {'torch', 'transformers', 'cv2', 'dlib'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_clip_vision_shapes_follow_the_config(tiny_clip):
    full, _, vision = tiny_clip
    bb = build_backbone("clip", {"type": "clip_vision", "source": str(full), "frame_batch": 4})
    frames = random_frames(5)
    a, empty, b = bb.embed([frames, frames[:0], frames[:2]])
    n_layers = vision.num_hidden_layers + 1
    assert a.pooled.shape == (n_layers, vision.hidden_size) and a.pooled.dtype == np.float32
    assert a.frames.shape == (5, vision.projection_dim)  # projected: CLIP's joint image-text space
    assert empty.pooled.shape == (n_layers, vision.hidden_size) and empty.frames.shape == (0, vision.projection_dim)
    assert not empty.pooled.any()
    # Frames are independent of batching: the first two frames give the same vectors either way.
    np.testing.assert_allclose(b.frames, a.frames[:2], atol=1e-5)
    info = bb.describe()
    assert info["frame_features"] == "projected" and info["frame_dims"] == vision.projection_dim
    assert info["model_type"] == "clip_vision_model" and info["revision"].startswith("sha256:")
    assert info["n_empty"] == 1 and info["face_crop"] == "none"


def test_clip_vision_only_checkpoint_uses_the_pooled_output(tiny_clip):
    _, vision_only, vision = tiny_clip
    cfg = {"type": "clip_vision", "source": str(vision_only), "pooling": "mean+std", "token": "mean"}
    (emb,) = build_backbone("clipv", cfg).embed([random_frames(3)])
    assert emb.pooled.shape == (vision.num_hidden_layers + 1, 2 * vision.hidden_size)
    assert emb.frames.shape == (3, vision.hidden_size)
    with pytest.raises(BackboneError, match="clipv: frame_features: projected.*no visual_projection"):
        build_backbone("clipv", {**cfg, "frame_features": "projected"})


def test_clip_vision_is_deterministic_on_cpu(tiny_clip):
    full, _, _ = tiny_clip
    frames = random_frames(3)
    one = build_backbone("clip", {"type": "clip_vision", "source": str(full), "device": "cpu"}).embed([frames])[0]
    two = build_backbone("clip", {"type": "clip_vision", "source": str(full), "device": "cpu"}).embed([frames])[0]
    np.testing.assert_array_equal(one.pooled, two.pooled)


def test_clip_vision_errors(tiny_clip, tiny_videomae, tmp_path):
    _, _, vision = tiny_clip
    with pytest.raises(BackboneError, match="clip: .* holds a 'videomae' checkpoint"):
        build_backbone("clip", {"type": "clip_vision", "source": str(tiny_videomae[0])})
    with pytest.raises(ConfigError, match="backbones.clip.face_crop = 'mtcnn': Input should be 'none', 'haar' or 'dlib'"):
        build_backbone("clip", {"type": "clip_vision", "source": str(tiny_clip[0]), "face_crop": "mtcnn"})
    from transformers import CLIPVisionModel

    CLIPVisionModel(vision).save_pretrained(tmp_path)  # no preprocessor_config.json beside it
    with pytest.raises(BackboneError, match="no preprocessor_config.json"):
        build_backbone("clip", {"type": "clip_vision", "source": str(tmp_path)})


@needs_ravdess
def test_clip_vision_face_crop_on_real_video(tiny_clip, ravdess_frames):
    full, _, vision = tiny_clip
    bb = build_backbone("clip", {"type": "clip_vision", "source": str(full), "face_crop": "haar"})
    (emb,) = bb.embed([ravdess_frames])
    assert emb.frames.shape == (len(ravdess_frames), vision.projection_dim)
    info = bb.describe()
    assert info["frames_total"] == len(ravdess_frames) and info["frames_without_face"] == 0


def test_uniform_sampling_and_clip_spans():
    np.testing.assert_array_equal(sample_indices(2, 4), [0, 0, 1, 1])  # fewer frames: each repeated
    np.testing.assert_array_equal(sample_indices(8, 4), [1, 3, 5, 7])  # middle of each span
    assert [len(s) for s in clip_spans(20, 8)] == [7, 7, 6]
    assert [len(s) for s in clip_spans(8, 8)] == [8]


def test_videomae_clips_follow_the_config(tiny_videomae):
    path, config = tiny_videomae
    bb = build_backbone("vmae", {"type": "videomae", "source": str(path), "clip_batch": 2})
    long = random_frames(20)
    embs = bb.embed([random_frames(2), random_frames(6), long, long[:0]])
    for emb in embs:
        assert emb.pooled.shape == (config.num_hidden_layers + 1, config.hidden_size) and emb.frames is None
    assert not embs[3].pooled.any()
    info = bb.describe()
    assert info["max_clip_frames"] == 2 * config.num_frames
    # 20 frames > 8 → three clips of 7, 7, 6 frames; 2 frames < num_frames → repeated
    assert (info["n_clips"], info["n_multi_clip"], info["n_repeated"], info["n_empty"]) == (5, 1, 1, 1)
    # The long utterance's features are the mean of its three clips, each embedded on its own.
    parts = bb.embed([long[s] for s in clip_spans(20, 8)])
    np.testing.assert_allclose(embs[2].pooled, np.mean([p.pooled for p in parts], axis=0), atol=1e-5)


def test_videomae_max_clip_frames_option(tiny_videomae):
    path, config = tiny_videomae
    bb = build_backbone("vmae", {"type": "videomae", "source": str(path), "max_clip_frames": config.num_frames})
    bb.embed([random_frames(12)])
    assert bb.describe()["n_clips"] == 3


@needs_ravdess
def test_dlib_face_descriptors_on_real_video(ravdess_frames):
    bb = build_backbone("dlibface", {"type": "dlib_face"})
    blank = np.zeros((2, *ravdess_frames.shape[1:]), np.uint8)
    emb, none = bb.embed([ravdess_frames, blank])
    assert emb.frames.shape == (len(ravdess_frames), 128) and emb.pooled.shape == (128,)
    info = bb.describe()
    found = emb.frames.any(axis=1)
    assert found.mean() >= 0.9
    assert info["frames_without_face"] == (len(ravdess_frames) - found.sum()) + 2
    # One actor throughout: every pair of descriptors is within dlib's same-person threshold.
    faces = emb.frames[found]
    dist = np.linalg.norm(faces[:, None] - faces[None], axis=-1)
    assert dist.max() < 0.6
    # No face: zero placeholders (never NaN), counted.
    assert np.isfinite(none.frames).all() and not none.frames.any() and not none.pooled.any()
    assert info["utterances_without_face"] == 1 and info["frames_total"] == len(ravdess_frames) + 2
    assert info["revision"].startswith("dlib==")


def test_dlib_face_options_are_checked():
    with pytest.raises(ConfigError, match="backbones.dlibface.landmarks = 194: Input should be 5 or 68"):
        build_backbone("dlibface", {"type": "dlib_face", "landmarks": 194})
