"""Waveform augmentation for fine-tuning, built from params with ``audiomentations``.

A head's ``augment`` list names audiomentations transforms in the order they are applied, each with
its probability ``p`` and its own keyword arguments::

    augment:
      - {name: AddGaussianSNR, p: 0.5, min_snr_db: 10, max_snr_db: 40}   # Gaussian noise at an SNR
      - {name: Gain, p: 0.5, min_gain_db: -6, max_gain_db: 6}
      - {name: GainTransition, p: 0.2}
      - {name: ClippingDistortion, p: 0.2, max_percentile_threshold: 10}
      - {name: TimeStretch, p: 0.3, min_rate: 0.9, max_rate: 1.1}
      - {name: PitchShift, p: 0.3, min_semitones: -2, max_semitones: 2}
    shuffle_augment: false      # true: a random order per example (audiomentations' Compose shuffle)
    augment_p: 1.0              # probability that an example is augmented at all (Compose's p)

Those six are the ones the seeds used; any other waveform transform audiomentations exports works
the same way. Augmentation is for training examples only (the fine-tuning dataset for dev and test
has no augmenter).

audiomentations draws its randomness from the global ``random`` and ``numpy.random`` generators,
so each call seeds both from ``(seed, key)`` — the caller passes a key unique to the draw (the item
and how many times it was drawn) — and restores the previous global state afterwards: the same
params give the same augmented audio on every run, whatever else uses those generators.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

import numpy as np

from pipeline.core.audio import SAMPLE_RATE
from pipeline.core.errors import ConfigError

SEED_SPECS = ("AddGaussianSNR", "Gain", "GainTransition", "ClippingDistortion", "TimeStretch", "PitchShift")


class AugmentError(ConfigError):
    """An ``augment`` entry that names no audiomentations transform or has bad arguments."""


class Augmenter:
    """A seeded ``audiomentations.Compose`` over the transforms listed in params."""

    def __init__(
        self,
        specs: Sequence[dict[str, Any]],
        *,
        shuffle: bool = False,
        p: float = 1.0,
        seed: int = 0,
        sample_rate: int = SAMPLE_RATE,
    ):
        import audiomentations

        transforms = []
        for i, spec in enumerate(specs):
            spec = dict(spec)
            name = spec.pop("name", None)
            cls = getattr(audiomentations, str(name), None)
            if not isinstance(cls, type):
                raise AugmentError(f"augment[{i}]: unknown audiomentations transform {name!r} (e.g. {list(SEED_SPECS)})")
            try:
                transforms.append(cls(**spec))
            except (TypeError, ValueError, AssertionError) as err:
                raise AugmentError(f"augment[{i}] ({name}): {err}") from err
        self.names = [type(t).__name__ for t in transforms]
        self.compose = audiomentations.Compose(transforms, p=float(p), shuffle=shuffle)
        self.seed = int(seed)
        self.sample_rate = sample_rate

    def __call__(self, audio: np.ndarray, key: Sequence[int]) -> np.ndarray:
        """Augment ``audio``; the same ``key`` (and seed) always gives the same result."""
        state = np.random.SeedSequence([self.seed, *map(int, key)]).generate_state(2)
        saved_py, saved_np = random.getstate(), np.random.get_state()
        try:
            random.seed(int(state[0]))
            np.random.seed(int(state[1]))
            out = self.compose(samples=np.asarray(audio, np.float32), sample_rate=self.sample_rate)
        finally:
            random.setstate(saved_py)
            np.random.set_state(saved_np)
        return np.asarray(out, np.float32)


def build_augmenter(specs: Sequence[dict[str, Any]], *, shuffle: bool = False, p: float = 1.0, seed: int = 0,
                    sample_rate: int = SAMPLE_RATE) -> Augmenter | None:
    """The training augmenter a head's ``augment`` list (+ ``shuffle_augment``, ``augment_p``, ``seed``)
    describes, or None when the list is empty."""
    if not specs:
        return None
    return Augmenter(specs, shuffle=shuffle, p=p, seed=seed, sample_rate=sample_rate)
