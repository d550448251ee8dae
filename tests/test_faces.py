"""Face detection and cropping (pipeline/features/faces.py) on the shared RAVDESS clip and on blank frames."""

import subprocess
import sys

import numpy as np
import pytest

from pipeline.core.errors import ConfigError
from pipeline.core.settings import parse
from pipeline.features.faces import (
    FaceCropSettings,
    FaceCropper,
    FaceError,
    crop_largest,
    detect_faces,
    dlib_model_path,
    expand_box,
    largest,
)
from pipeline.core.media import decode_frames
from tests.conftest import RAVDESS_MP4, ROOT, needs_ravdess

BLANK = np.full((96, 96, 3), 127, np.uint8)


@pytest.fixture(scope="module")
def ravdess_frames():
    if not RAVDESS_MP4.exists():
        pytest.skip("shared RAVDESS sample not present")
    return decode_frames(RAVDESS_MP4, fps=2, size=96)  # the pipeline's default segment size


def test_importing_faces_is_cheap():
    code = "import sys, pipeline.features.faces; assert not {'cv2', 'dlib', 'torch'} & set(sys.modules), sys.modules.keys()"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@needs_ravdess
@pytest.mark.parametrize("method", ["haar", "dlib"])
def test_detectors_find_the_actor(ravdess_frames, method):
    for frame in ravdess_frames:
        boxes = detect_faces(frame, method)
        assert boxes.dtype == np.int64 and boxes.shape[1] == 4 and len(boxes) >= 1
        x, y, w, h = boxes[largest(boxes)]
        assert x >= 0 and y >= 0 and x + w <= 96 and y + h <= 96
        assert 20 <= w <= 80  # a head, not the whole letterboxed frame


@needs_ravdess
def test_dlib_auto_upsampling_finds_small_faces(ravdess_frames):
    frame = ravdess_frames[0]
    assert len(detect_faces(frame, "dlib", upsample=0)) == 0  # HOG needs ≥ ~80 px faces
    assert len(detect_faces(frame, "dlib", upsample="auto")) == 1


@needs_ravdess
def test_crop_largest_square_with_margin(ravdess_frames):
    frame = ravdess_frames[0]
    crop, found = crop_largest(frame, "haar")
    assert found and crop.shape[0] == crop.shape[1] and crop.shape[2] == 3
    wider, _ = crop_largest(frame, "haar", margin=0.2)
    assert wider.shape[0] > crop.shape[0]
    resized, _ = crop_largest(frame, "dlib", size=48, margin=0.1)
    assert resized.shape == (48, 48, 3) and resized.dtype == np.uint8


def test_no_face_falls_back_to_the_whole_frame_and_is_counted():
    crop, found = crop_largest(BLANK, "haar", size=32)
    assert not found and crop.shape == (32, 32, 3)
    cropper = FaceCropper("dlib")
    crops = cropper.crop_all(np.stack([BLANK, BLANK]))
    assert all(np.array_equal(c, BLANK) for c in crops)
    assert cropper.stats() == {
        "face_detector": "dlib", "face_margin": 0.0, "frames_total": 2, "frames_without_face": 2,
    }


def test_expand_box_is_clipped_to_the_frame():
    assert expand_box(np.array([0, 0, 10, 20]), 50, 50, margin=0.5) == (0, 0, 25, 30)  # square, then clipped
    assert expand_box(np.array([40, 40, 10, 10]), 50, 50, margin=0.2) == (38, 38, 12, 12)
    assert expand_box(np.array([10, 10, 10, 20]), 50, 50) == (5, 10, 20, 20)  # squared around the centre


def test_unknown_method_and_options():
    with pytest.raises(FaceError, match="must be one of"):
        detect_faces(BLANK, "mtcnn")
    with pytest.raises(ConfigError, match="x.face_crop = 'retina'"):
        FaceCropper.from_settings(parse(FaceCropSettings, {"face_crop": "retina"}, "x"))
    assert FaceCropper.from_settings(FaceCropSettings()) is None
    assert FaceCropper.from_settings(FaceCropSettings(face_crop="haar", face_margin=0.3)).margin == 0.3


def test_dlib_model_files_are_located_without_importing_the_package():
    for kind in ("shape_5", "shape_68", "resnet"):
        assert dlib_model_path(kind).stat().st_size > 1_000_000
    with pytest.raises(FaceError, match="unknown dlib model"):
        dlib_model_path("shape_194")


def fer_original_face(frame):
    """The fer backbone's own face step before pipeline.features.faces existed (fer_video.py ``_face``)."""
    import cv2

    detector = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    faces = detector.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=4, minSize=(24, 24))
    if len(faces):
        x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
        return gray[y : y + h, x : x + w], True
    return gray, False


@needs_ravdess
def test_cropper_reproduces_the_fer_backbones_face(ravdess_frames):
    """FaceCropper('haar') gives fer's original crop: fer can use pipeline.features.faces without changing features."""
    import cv2

    cropper = FaceCropper("haar")
    n_fallback = 0
    for frame in [*ravdess_frames, BLANK]:
        ours = cv2.cvtColor(cropper(frame), cv2.COLOR_RGB2GRAY)
        theirs, found = fer_original_face(frame)
        n_fallback += not found
        np.testing.assert_array_equal(ours, theirs)
    assert cropper.n_no_face == n_fallback == 1
