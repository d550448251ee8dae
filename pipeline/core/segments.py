"""The segments store: every utterance's decoded media, the contract between ``segment`` and its readers.

``data/<corpus>/segments.zarr`` holds ``ids``, flat ``audio`` (16 kHz mono float32) + ``audio_offsets``,
flat ``frames`` [F, S, S, 3] uint8 + ``frame_offsets`` (zero frames for audio-only items), and per item
the content keys ``audio_key`` / ``frames_key`` (hashes of the decoded samples and the segment
parameters) that the embed cache is keyed on, and ``audio_digest`` / ``video_digest``: the content
digests of the files each item was decoded from. The store is sealed with every array's checksum
(:func:`pipeline.core.zarrio.seal`); opening it checks that it is complete and every array has its
sealed length, and ``python -m pipeline.tools.verify`` reads every array back. :mod:`pipeline.segment` writes it; the embed,
transcribe and fine-tuning stages read it through :class:`Segments`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from pipeline.core.errors import StoreError
from pipeline.core.zarrio import read_strings, verify_group


class Segments:
    """Read access to a segments store: audio and frames by utterance id."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "zarr.json").exists():
            raise StoreError(f"{self.path}: segments store not found; run the segment stage")
        self.group = zarr.open_group(str(self.path), mode="r")
        problems = verify_group(self.group, deep=False)
        if problems:
            raise StoreError(f"{self.path}: segments store is damaged or incomplete ({'; '.join(problems)}); "
                             "rerun the segment stage")
        self.ids = read_strings(self.group["ids"])
        self.index = {uid: i for i, uid in enumerate(self.ids)}
        self.sample_rate = int(self.group.attrs["sample_rate"])
        self.fps = float(self.group.attrs["fps"])
        self._audio_off = self.group["audio_offsets"][:]
        self._frame_off = self.group["frame_offsets"][:]

    def audio(self, uid: str) -> np.ndarray:
        return self.audio_at(self.index[uid])

    def frames(self, uid: str) -> np.ndarray:
        return self.frames_at(self.index[uid])

    def audio_at(self, i: int) -> np.ndarray:
        return self.group["audio"][self._audio_off[i] : self._audio_off[i + 1]]

    def frames_at(self, i: int) -> np.ndarray:
        return self.group["frames"][self._frame_off[i] : self._frame_off[i + 1]]

    def lengths(self, modality: str) -> np.ndarray:
        """Per-item input lengths (samples for audio, frames for video), in store order."""
        return np.diff(self._frame_off if modality == "video" else self._audio_off)

    def keys(self, modality: str) -> list[str]:
        """Content keys of every item's audio (or frames, for ``video``), in store order."""
        name = "frames_key" if modality == "video" else "audio_key"
        if name not in self.group:
            raise StoreError(f"{self.path}: no {name} array (written by an older version); rerun the segment stage")
        return read_strings(self.group[name])

    def duration(self, uid: str) -> float:
        i = self.index[uid]
        return float(self._audio_off[i + 1] - self._audio_off[i]) / self.sample_rate
