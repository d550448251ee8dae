"""Resemblyzer speaker embeddings: 256-d d-vectors from a 3-layer LSTM speaker encoder (GE2E loss).

Weights: ``pretrained.pt`` shipped inside the ``resemblyzer`` wheel (Resemble AI, Apache-2.0;
install with ``pip install --no-deps resemblyzer webrtcvad-wheels``), so it runs offline; ``source``
may instead point at another VoiceEncoder ``.pt`` file. Not layered: ``pooled`` is the L2-normalised
utterance embedding [256] — the normalised mean of the partial embeddings of 1.6 s windows taken
``rate`` times per second (default 1.3). ``partials: true`` also keeps those partial embeddings as
frame features [n, 256] (frame rate ≈ ``rate``).

Preprocessing follows resemblyzer's ``preprocess_wav`` on our 16 kHz float audio (no resampling):
volume normalisation to -30 dBFS and removal of long silences with webrtcvad
(``preprocess: false`` skips it). When VAD leaves less than ``min_seconds`` (default 0.3) of audio,
or the input is silent, the untrimmed audio is used instead; inputs shorter than that are zero-padded.
Both cases are counted in ``describe()``. ``device``: auto | cpu (default) | cuda.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pydantic import Field

from pipeline.core.audio import SAMPLE_RATE, pad_to, seconds_to_samples
from pipeline.core.errors import BackboneError
from pipeline.core.runtime import file_digest, resolve_device
from pipeline.core.runtime import Device
from pipeline.features.backbones.base import Backbone, BackboneSettings, Embedding, register_backbone

DEFAULT_SOURCE = "package:resemblyzer"


def _import_resemblyzer():
    with warnings.catch_warnings():  # resemblyzer imports the deprecated scipy.ndimage.morphology
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import resemblyzer
        except ImportError as err:
            raise BackboneError(
                f"resemblyzer is not importable ({err}); install it with "
                f"`pip install --no-deps resemblyzer webrtcvad-wheels` (librosa is already a dependency)"
            ) from err
    return resemblyzer


class ResemblyzerSettings(BackboneSettings):
    source: str = DEFAULT_SOURCE  # or a VoiceEncoder .pt file
    device: Device = "cpu"
    rate: float = Field(1.3, gt=0)  # partial embeddings per second
    min_coverage: float = Field(0.75, gt=0, le=1)
    preprocess: bool = True  # resemblyzer's volume normalisation + VAD silence trimming
    min_seconds: float = 0.3
    partials: bool = False  # also keep the partial embeddings as frame features


@register_backbone(
    "resemblyzer",
    description="Resemblyzer 256-d speaker d-vectors",
    settings=ResemblyzerSettings,
    licence="Apache-2.0", weights="ships in the wheel",
    verified="`VoiceEncoder.embed_utterance(preprocess_wav(path))`: cos ≥ 0.9999, equal partial counts",
    verified_by="tests/test_parity_wheels.py::test_resemblyzer_equals_embed_utterance_of_preprocess_wav",
)
class ResemblyzerBackbone(Backbone):
    modality = "audio"

    def __init__(self, name: str, settings: ResemblyzerSettings):
        super().__init__(name, settings)
        resemblyzer = _import_resemblyzer()
        self._resemblyzer = resemblyzer
        source = settings.source or DEFAULT_SOURCE
        if source == DEFAULT_SOURCE:
            self.weights = Path(resemblyzer.__file__).parent / "pretrained.pt"
        else:
            self.weights = Path(source).expanduser()
        if not self.weights.is_file():
            raise BackboneError(f"backbones.{name}: VoiceEncoder weights {self.weights} not found (source: {source!r})")
        self.source = source
        self.device = resolve_device(settings.device)
        self.encoder = resemblyzer.VoiceEncoder(self.device, verbose=False, weights_fpath=self.weights)
        self.encoder.eval()
        self.rate = settings.rate
        self.min_coverage = settings.min_coverage
        self.preprocess = settings.preprocess
        self.min_samples = seconds_to_samples(settings.min_seconds)
        self.has_frames = settings.partials
        self.n_vad_fallback = 0
        self.n_padded = 0

    def _prepare(self, audio: np.ndarray) -> np.ndarray:
        wav = np.asarray(audio, dtype=np.float32)
        if self.preprocess and np.abs(wav).max(initial=0.0) > 0:  # silence would make the dBFS maths -inf
            trimmed = self._resemblyzer.preprocess_wav(wav).astype(np.float32)
            if len(trimmed) >= self.min_samples:
                return trimmed
            self.n_vad_fallback += 1  # VAD found (almost) no speech: keep the whole segment
        wav, padded = pad_to(wav, self.min_samples)
        self.n_padded += padded
        return wav

    def embed(self, batch: Sequence[np.ndarray]) -> list[Embedding]:
        import torch

        out = []
        for audio in batch:
            wav = self._prepare(audio)
            with torch.inference_mode():
                embed, partials, _ = self.encoder.embed_utterance(
                    wav, return_partials=True, rate=self.rate, min_coverage=self.min_coverage
                )
            # an all-zero partial (e.g. digital silence) normalises to NaN; store zeros instead
            embed = np.nan_to_num(embed.astype(np.float32))
            frames = np.nan_to_num(partials.astype(np.float32)) if self.has_frames else None
            out.append(Embedding(embed, frames))
        return out

    def frame_rate(self) -> float:
        """Partial embeddings per second, as resemblyzer rounds its step to whole 10 ms mel frames."""
        hop = SAMPLE_RATE // 100
        return SAMPLE_RATE / (round(SAMPLE_RATE / self.rate / hop) * hop)

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "revision": file_digest(self.weights),
            "frame_rate": self.frame_rate() if self.has_frames else None,
            "model_type": "resemblyzer-voice-encoder",
            "preprocess": self.preprocess,
            "rate": self.rate,
            "n_vad_fallback": self.n_vad_fallback,
            "n_padded": self.n_padded,
        }
