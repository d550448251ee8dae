"""hearbaseline's naive HEAR module, loadable under librosa >= 0.10 — a test-side compatibility shim.

``hearbaseline`` 2021.1.1 (``hearbaseline/naive.py``) builds its mel filter bank with
``librosa.filters.mel(self.sample_rate, n_fft=..., n_mels=...)``; librosa 0.10 made ``sr`` keyword-only,
so ``hearbaseline.naive.load_model()`` raises ``TypeError`` on this stack. Nothing else in the module is
affected. This shim is ``hearbaseline.naive`` with that one call mended: :func:`load_model` runs the
module's own ``load_model`` while ``librosa.filters.mel`` accepts ``sr`` positionally (patched for the
duration of the call only, so no other librosa user in the process sees it). The filter bank is the
one hearbaseline asked for — librosa's defaults (Slaney mel, Slaney norm, fmax = sr / 2) did not change
between 0.8 and 0.11 — and ``get_scene_embeddings`` / ``get_timestamp_embeddings`` are hearbaseline's.

In-process tests patch ``librosa.filters.mel`` with :func:`mel_accepting_positional_sr` and use the
real module name ``hearbaseline.naive``; the DVC test, whose stages run in subprocesses, names this file
as the backbone's ``module`` (copied onto ``PYTHONPATH``).
"""

from __future__ import annotations

import functools
from unittest import mock

import hearbaseline
import librosa
from hearbaseline import naive
from hearbaseline.naive import get_scene_embeddings, get_timestamp_embeddings  # noqa: F401 (the HEAR API)

__version__ = f"{hearbaseline.__version__}+librosa-shim"  # what the backbone records as the module's version
_MEL = librosa.filters.mel


@functools.wraps(_MEL)
def mel_accepting_positional_sr(*args, **kwargs):
    """``librosa.filters.mel`` as librosa < 0.10 took it: ``sr`` may come first, positionally."""
    if args:
        kwargs["sr"], args = args[0], args[1:]
    return _MEL(*args, **kwargs)


def load_model(model_file_path: str = ""):
    """``hearbaseline.naive.load_model`` with the librosa call mended (see the module docstring)."""
    with mock.patch.object(librosa.filters, "mel", mel_accepting_positional_sr):
        return naive.load_model(model_file_path)
