"""Face detection and cropping for the video backbones (fer, clip_vision, dlib_face).

Two detectors, both offline:

- ``haar``: OpenCV's bundled frontal-face Haar cascade (``cv2.data.haarcascades``; needs
  ``opencv-python-headless<5``, 5.0 dropped ``CascadeClassifier``). Fast, finds faces down to 24 px,
  more false positives. Parameters match the ``fer`` backbone's original detector.
- ``dlib``: dlib's HOG + linear SVM frontal detector (``dlib.get_frontal_face_detector()``, from the
  ``dlib-bin`` wheel). It only finds faces of ≥ ~80 px at a given scale, so by default
  (``upsample="auto"``) a frame with no face is retried on a 2× and then a 4× upsampled image —
  letterboxed 96–160 px frames need that, full-size frames do not pay for it.

Boxes are ``int`` ``[N, 4]`` arrays of ``(x, y, w, h)`` in pixel coordinates, clipped to the frame.
:class:`FaceCropper` crops the largest face of each frame (square, with an optional margin), falls back
to the whole frame when none is found and counts those frames. The dlib model files of the
``face_recognition_models`` wheel (landmarks, 128-d descriptor ResNet) are located with
:func:`dlib_model_path` without importing that package (its import pulls ``pkg_resources``).
Heavy imports (cv2, dlib) happen inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from pipeline.core.errors import BackboneError
from pipeline.core.settings import Settings

METHODS = ("haar", "dlib")
# Files shipped in the face_recognition_models wheel (models/ inside the package).
DLIB_MODELS = {
    "shape_5": "shape_predictor_5_face_landmarks.dat",
    "shape_68": "shape_predictor_68_face_landmarks.dat",
    "resnet": "dlib_face_recognition_resnet_model_v1.dat",
    "cnn_detector": "mmod_human_face_detector.dat",
}
# Haar parameters of the fer backbone's original detector (kept so its features do not change).
HAAR_SCALE_FACTOR = 1.1
HAAR_MIN_NEIGHBORS = 4
HAAR_MIN_SIZE = 24
MAX_AUTO_UPSAMPLE = 2

_lock = threading.Lock()  # neither the cascade nor dlib's detector is documented as thread-safe


class FaceError(BackboneError):
    """A face detector or face model that cannot be used; the message says what to install."""


class FaceCropSettings(Settings):
    """The face-crop options of frame backbones (``clip_vision``, ``videomae``)."""

    face_crop: Literal["none", "haar", "dlib"] = "none"  # crop each frame's largest face first
    face_margin: float = Field(0.2, ge=0)  # of the box, on each side
    face_upsample: Literal["auto", 0, 1, 2] = "auto"  # dlib only


def check_method(method: str) -> str:
    if method not in METHODS:
        raise FaceError(f"face detector must be one of {METHODS}, got {method!r}")
    return method


@functools.cache
def _haar_cascade():
    try:
        import cv2
    except ImportError as err:
        raise FaceError(f"Haar face detection needs OpenCV (pip install 'opencv-python-headless<5'): {err}") from err
    if not hasattr(cv2, "CascadeClassifier"):
        raise FaceError(f"OpenCV {cv2.__version__} has no CascadeClassifier; pin opencv-python-headless<5")
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    if cascade.empty():
        raise FaceError(f"could not load the Haar cascade from {cv2.data.haarcascades}")
    return cascade


def import_dlib():
    try:
        import dlib
    except ImportError as err:
        raise FaceError(f"dlib is not installed (pip install dlib-bin): {err}") from err
    return dlib


@functools.cache
def _dlib_detector():
    return import_dlib().get_frontal_face_detector()


def dlib_model_path(kind: str) -> Path:
    """Path of a dlib model file from the ``face_recognition_models`` wheel (``shape_5``, ``shape_68``, ``resnet``).

    Uses the package's location only: importing it would pull the deprecated ``pkg_resources``
    (gone with setuptools ≥ 81), while the files are plain data in ``models/``.
    """
    if kind not in DLIB_MODELS:
        raise FaceError(f"unknown dlib model {kind!r}; known: {sorted(DLIB_MODELS)}")
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceError("the dlib face models are not installed (pip install face-recognition-models)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / DLIB_MODELS[kind]
    if not path.exists():
        raise FaceError(f"{path}: dlib model file missing (reinstall face-recognition-models)")
    return path


def _clip_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """(x, y, w, h) boxes clipped to the frame; empty boxes dropped."""
    if len(boxes) == 0:
        return np.zeros((0, 4), np.int64)
    x0 = np.clip(boxes[:, 0], 0, width)
    y0 = np.clip(boxes[:, 1], 0, height)
    x1 = np.clip(boxes[:, 0] + boxes[:, 2], 0, width)
    y1 = np.clip(boxes[:, 1] + boxes[:, 3], 0, height)
    out = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1).astype(np.int64)
    return out[(out[:, 2] > 0) & (out[:, 3] > 0)]


def detect_faces(frame: np.ndarray, method: str = "haar", upsample: int | str = "auto") -> np.ndarray:
    """Faces in one uint8 RGB frame [H, W, 3] → int boxes [N, 4] as (x, y, w, h).

    ``upsample`` only applies to ``dlib``: a fixed number of 2× upsamplings, or ``"auto"``
    (0, then 1, then 2 until a face is found).
    """
    check_method(method)
    frame = np.ascontiguousarray(frame, dtype=np.uint8)
    height, width = frame.shape[:2]
    if method == "haar":
        cascade = _haar_cascade()  # first: a clear error when OpenCV is missing or too new
        import cv2

        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        with _lock:
            found = cascade.detectMultiScale(
                gray,
                scaleFactor=HAAR_SCALE_FACTOR,
                minNeighbors=HAAR_MIN_NEIGHBORS,
                minSize=(HAAR_MIN_SIZE, HAAR_MIN_SIZE),
            )
        return _clip_boxes(np.asarray(found, np.int64).reshape(-1, 4), height, width)
    boxes = np.array([_rect_to_box(r) for r in dlib_rects(frame, upsample)], np.int64).reshape(-1, 4)
    return _clip_boxes(boxes, height, width)


def dlib_rects(frame: np.ndarray, upsample: int | str = "auto") -> list:
    """dlib ``rectangle`` objects for one RGB frame (what dlib's shape predictor expects)."""
    detector = _dlib_detector()
    frame = np.ascontiguousarray(frame, dtype=np.uint8)  # dlib accepts only C-contiguous uint8 images
    levels = range(MAX_AUTO_UPSAMPLE + 1) if upsample == "auto" else [int(upsample)]
    rects: list = []
    for level in levels:
        with _lock:
            rects = list(detector(frame, level))
        if rects:
            break
    return rects


def _rect_to_box(rect) -> tuple[int, int, int, int]:
    return rect.left(), rect.top(), rect.right() - rect.left(), rect.bottom() - rect.top()


def largest(boxes: np.ndarray) -> int | None:
    """Index of the largest box (by area), or None when there are none."""
    if len(boxes) == 0:
        return None
    return int(np.argmax(boxes[:, 2] * boxes[:, 3]))


def expand_box(
    box: np.ndarray, height: int, width: int, margin: float = 0.0, square: bool = True
) -> tuple[int, int, int, int]:
    """Grow ``box`` by ``margin`` × its size on every side (square around its centre), clipped to the frame."""
    x, y, w, h = (int(v) for v in box)
    if square:
        side = max(w, h)
        x, y, w, h = x + (w - side) // 2, y + (h - side) // 2, side, side
    dx, dy = int(round(w * margin)), int(round(h * margin))
    x0, y0 = max(0, x - dx), max(0, y - dy)
    x1, y1 = min(width, x + w + dx), min(height, y + h + dy)
    return x0, y0, x1 - x0, y1 - y0


def _resize(image: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or image.shape[:2] == (size, size):
        return image
    import cv2

    # INTER_AREA when shrinking (no aliasing), bilinear when enlarging small face crops.
    interp = cv2.INTER_AREA if min(image.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def crop_largest(
    frame: np.ndarray,
    method: str = "haar",
    size: int | None = None,
    margin: float = 0.0,
    upsample: int | str = "auto",
) -> tuple[np.ndarray, bool]:
    """Crop the largest face of ``frame`` (square, grown by ``margin``), resized to ``size``×``size``.

    Returns ``(crop, found)``; with no face the whole frame is returned (resized) and ``found`` is
    False, so callers can count fallbacks (:class:`FaceCropper` does).
    """
    boxes = detect_faces(frame, method, upsample)
    i = largest(boxes)
    if i is None:
        return _resize(frame, size), False
    x, y, w, h = expand_box(boxes[i], frame.shape[0], frame.shape[1], margin)
    return _resize(frame[y : y + h, x : x + w], size), True


class FaceCropper:
    """Crop the largest face of every frame, counting frames that fell back to the whole frame."""

    def __init__(
        self, method: str = "haar", size: int | None = None, margin: float = 0.0, upsample: int | str = "auto"
    ):
        self.method = check_method(method)
        self.size = size
        self.margin = float(margin)
        self.upsample = upsample
        self.n_frames = 0
        self.n_no_face = 0

    @classmethod
    def from_settings(cls, settings: FaceCropSettings) -> FaceCropper | None:
        """The cropper a backbone's ``face_crop: none | haar | dlib`` + ``face_margin`` options ask for."""
        if settings.face_crop == "none":
            return None
        return cls(settings.face_crop, margin=settings.face_margin, upsample=settings.face_upsample)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        crop, found = crop_largest(frame, self.method, self.size, self.margin, self.upsample)
        self.n_frames += 1
        self.n_no_face += not found
        return crop

    def crop_all(self, frames: np.ndarray) -> list[np.ndarray]:
        return [self(f) for f in frames]

    def stats(self) -> dict[str, Any]:
        """Provenance for ``describe()``."""
        return {
            "face_detector": self.method,
            "face_margin": self.margin,
            "frames_total": self.n_frames,
            "frames_without_face": self.n_no_face,
        }
