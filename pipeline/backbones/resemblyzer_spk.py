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

import hashlib
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.backbones import register_backbone
from pipeline.backbones.base import Backbone, BackboneError, Embedding, resolve_device

SAMPLE_RATE = 16000
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


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()[:16]


@register_backbone("resemblyzer")
class ResemblyzerBackbone(Backbone):
    modality = "audio"

    def __init__(self, name: str, cfg: dict[str, Any]):
        super().__init__(name, cfg)
        resemblyzer = _import_resemblyzer()
        self._resemblyzer = resemblyzer
        source = cfg.get("source") or DEFAULT_SOURCE
        if source == DEFAULT_SOURCE:
            self.weights = Path(resemblyzer.__file__).parent / "pretrained.pt"
        else:
            self.weights = Path(source).expanduser()
        if not self.weights.is_file():
            raise BackboneError(f"backbones.{name}: VoiceEncoder weights {self.weights} not found (source: {source!r})")
        self.source = source
        self.device = resolve_device(cfg.get("device", "cpu"))
        self.encoder = resemblyzer.VoiceEncoder(self.device, verbose=False, weights_fpath=self.weights)
        self.encoder.eval()
        self.rate = float(cfg.get("rate", 1.3))
        self.min_coverage = float(cfg.get("min_coverage", 0.75))
        self.preprocess = bool(cfg.get("preprocess", True))
        self.min_samples = int(float(cfg.get("min_seconds", 0.3)) * SAMPLE_RATE)
        self.has_frames = bool(cfg.get("partials", False))
        self.n_vad_fallback = 0
        self.n_padded = 0

    def _prepare(self, audio: np.ndarray) -> np.ndarray:
        wav = np.asarray(audio, dtype=np.float32)
        if self.preprocess and np.abs(wav).max(initial=0.0) > 0:  # silence would make the dBFS maths -inf
            trimmed = self._resemblyzer.preprocess_wav(wav).astype(np.float32)
            if len(trimmed) >= self.min_samples:
                return trimmed
            self.n_vad_fallback += 1  # VAD found (almost) no speech: keep the whole segment
        if len(wav) < self.min_samples:
            wav = np.pad(wav, (0, self.min_samples - len(wav)))
            self.n_padded += 1
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
            "revision": _file_digest(self.weights),
            "frame_rate": self.frame_rate() if self.has_frames else None,
            "model_type": "resemblyzer-voice-encoder",
            "preprocess": self.preprocess,
            "rate": self.rate,
            "n_vad_fallback": self.n_vad_fallback,
            "n_padded": self.n_padded,
        }
