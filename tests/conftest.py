"""Shared fixtures. Heavy tests are marked ``slow`` and run with ``--runslow``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.data.media import tone, write_wav  # noqa: F401  (re-exported for tests)

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"
EMODB = REAL / "emodb_sample"
RAVDESS_MP4 = REAL / "ravdess_sample" / "01-01-01-01-01-01-01.mp4"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: heavy test, run with --runslow")
    config.addinivalue_line("markers", "dvc: runs the real `dvc` CLI in a temporary git repository (-m dvc / -m 'not dvc')")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


needs_emodb = pytest.mark.skipif(not EMODB.is_dir(), reason="shared EmoDB sample not present")
needs_ravdess = pytest.mark.skipif(not RAVDESS_MP4.exists(), reason="shared RAVDESS sample not present")


def ravdess_frames_at(fps: float, size: int = 224):
    """The shared RAVDESS clip's frames as the segment stage decodes them (skips when it is absent)."""
    if not RAVDESS_MP4.exists():
        pytest.skip("shared RAVDESS sample not present")
    from pipeline.core.media import decode_frames

    return decode_frames(RAVDESS_MP4, fps=fps, size=size)


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Path:
    """A small demo corpus tree (4 speakers × 4 emotions × 2) generated once per session."""
    from pipeline.corpora.synth.demo import generate_demo_corpus

    out = tmp_path_factory.mktemp("demo") / "tree"
    return generate_demo_corpus(out, seed=1, n_speakers=4, utterances_per_class=2, progress=False)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest (and bit-reproducibly) on one torch thread, above all on a busy machine:
    thread start-up costs more than their maths."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def in_tmp_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path
