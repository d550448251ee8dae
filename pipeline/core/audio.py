"""Audio conventions and the windowing helpers every audio model shares.

Every stage after ``segment`` sees 16 kHz mono float32 (:data:`SAMPLE_RATE`, the only place the rate
is written down). Long inputs are never truncated by a backbone: they are cut into windows whose
outputs are combined. Two windowing rules exist because models need different things:

- :func:`even_windows` — ``ceil(n / window)`` near-equal windows aligned to the model's frame hop
  (transformers encoders, CLAP): no sliver at the end, frames stay on one time grid;
- :func:`fixed_windows` — consecutive windows of exactly ``window`` samples, a short last sliver
  folded into the previous window (funasr models: emotion2vec, Paraformer/SenseVoice ASR).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

SAMPLE_RATE = 16000


def seconds_to_samples(seconds: float) -> int:
    return int(float(seconds) * SAMPLE_RATE)


def pad_to(audio: np.ndarray, min_samples: int) -> tuple[np.ndarray, bool]:
    """``audio`` zero-padded at the end to ``min_samples`` (and whether it was padded)."""
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) >= min_samples:
        return audio, False
    return np.pad(audio, (0, min_samples - len(audio))), True


def fit_length(audio: np.ndarray, max_samples: int, min_samples: int) -> np.ndarray:
    """Keep the first ``max_samples``; zero-pad below ``min_samples`` (fine-tuning's fixed budget)."""
    return pad_to(np.asarray(audio, np.float32)[:max_samples], min_samples)[0]


def even_windows(audio: np.ndarray, window: int, align: int = 1) -> list[np.ndarray]:
    """Cut ``audio`` into ceil(len / window) near-equal consecutive windows (each <= ``window``).

    Near-equal rather than fixed-size windows so that the last one is never a sliver too short for
    the model; window starts are multiples of ``align`` samples (the model's frame hop) so that the
    concatenated frames stay on one time grid.
    """
    n = max(1, math.ceil(len(audio) / window))
    if n == 1:
        return [audio]
    size = math.ceil(len(audio) / n / align) * align
    if size > window:  # rounding up to the hop overshot the window: fall back to plain sizes
        size = math.ceil(len(audio) / n)
    return [audio[i * size : (i + 1) * size] for i in range(math.ceil(len(audio) / size))]


def fixed_windows(audio: np.ndarray, window: int, min_samples: int) -> tuple[list[np.ndarray], bool]:
    """Pad ``audio`` to ``min_samples`` and cut it into consecutive windows of ``window`` samples.

    Returns the windows and whether padding happened. Nothing is dropped: a last window shorter
    than ``min_samples`` is folded into the previous one.
    """
    audio, padded = pad_to(audio, min_samples)
    n = max(1, math.ceil(len(audio) / window))
    pieces = [audio[i * window : (i + 1) * window] for i in range(n)]
    if n > 1 and len(pieces[-1]) < min_samples:  # a sliver at the end: fold it into the previous window
        pieces[-2:] = [np.concatenate(pieces[-2:])]
    return pieces, padded


def group_by_seconds(
    lengths: Sequence[int], budget_samples: int, fixed_samples: int | None = None
) -> list[list[int]]:
    """Indices grouped into batches whose padded size (n × longest, or n × ``fixed_samples`` for
    models that pad every input to a fixed length) stays within ``budget_samples``; longest first so
    that batches hold inputs of similar length. An input larger than the budget gets a batch of its
    own; a budget of 0 puts every input on its own."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        # the first (longest) member of a group sets its padded length
        if groups and (len(groups[-1]) + 1) * (fixed_samples or lengths[groups[-1][0]]) <= budget_samples:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


# Quality warnings for one decoded item (see :func:`audio_warnings`).
SILENT_PEAK_DBFS = -60.0  # peak below -60 dBFS (|x| < 0.001, ~33 LSB of 16-bit): nothing audible
MIN_AUDIO_SECONDS = 0.05  # under 50 ms: shorter than one phone, and than most models' first frame
CLIP_LEVEL = 0.999  # |x| at or above this counts as a sample at full scale
CLIPPED_FRACTION = 0.01  # more than 1 % of the samples at full scale: clipped throughout, not a stray peak


def audio_warnings(audio: np.ndarray, sample_rate: int) -> list[str]:
    """Quality warnings for a decoded item: a subset of ``['silent', 'short', 'clipped']``.

    Warnings, not errors: such items decode fine and are kept, but are worth counting. ``silent``:
    peak below :data:`SILENT_PEAK_DBFS`; ``short``: under :data:`MIN_AUDIO_SECONDS`; ``clipped``:
    more than :data:`CLIPPED_FRACTION` of the samples at |x| >= :data:`CLIP_LEVEL` (a peak that
    touches full scale once is not clipping; a limiter-flattened or overdriven recording is).
    One pass over the samples (``|x|`` once), cheap enough for every item.
    """
    audio = np.asarray(audio)
    warnings = []
    mag = np.abs(audio)
    peak = float(mag.max()) if mag.size else 0.0
    if peak < 10.0 ** (SILENT_PEAK_DBFS / 20.0):
        warnings.append("silent")
    if audio.size < MIN_AUDIO_SECONDS * sample_rate:
        warnings.append("short")
    if peak >= CLIP_LEVEL and np.count_nonzero(mag >= CLIP_LEVEL) > CLIPPED_FRACTION * mag.size:
        warnings.append("clipped")
    return warnings
