"""Fine-tuning data: segment audio as training examples, feature extraction and AST normalisation.

Audio is cut to ``max_seconds`` and zero-padded to ``min_seconds``; training examples alone are
augmented (:mod:`.augment`). For AST the input spectrogram is normalised with the training split's
mean and std (the AST tutorial's recipe), written into the saved feature extractor.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
from tqdm import tqdm

from pipeline.core.audio import SAMPLE_RATE, fit_length
from pipeline.core.segments import Segments
from pipeline.heads.finetune.augment import Augmenter
from pipeline.heads.finetune.settings import FinetuneError, FinetuneSettings


class SegmentAudio:
    """Training/evaluation examples: audio of ``ids`` from a segments store, with targets.

    Audio is cut to ``max_seconds`` and zero-padded to ``min_seconds``; it is read once and kept
    in memory (``cache_audio``), since epochs re-read every item. Only a dataset given an
    ``augmenter`` augments; each draw of item ``i`` is keyed by ``(i, draw count)``, so augmented
    audio is reproducible and differs from epoch to epoch.
    """

    def __init__(
        self, segments: Segments, ids: Sequence[str], targets: np.ndarray, s: FinetuneSettings, augmenter: Augmenter | None = None
    ):
        self.segments, self.ids, self.targets = segments, list(ids), np.asarray(targets)
        self.max_samples = int(s.max_seconds * SAMPLE_RATE)
        self.min_samples = int(s.min_seconds * SAMPLE_RATE)
        self.augmenter = augmenter
        self.draws = np.zeros(len(self.ids), dtype=np.int64)
        self._cache: dict[int, np.ndarray] | None = {} if s.cache_audio else None

    def __len__(self) -> int:
        return len(self.ids)

    def audio(self, i: int) -> np.ndarray:
        """Item ``i``'s (un-augmented) audio."""
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        audio = fit_length(self.segments.audio(self.ids[i]), self.max_samples, self.min_samples)
        if self._cache is not None:
            self._cache[i] = audio
        return audio

    def __getitem__(self, i: int) -> dict[str, Any]:
        audio = self.audio(i)
        if self.augmenter is not None:
            audio = self.augmenter(audio, key=(i, self.draws[i]))
            self.draws[i] += 1
        return {"audio": audio, "labels": self.targets[i]}

    def n_cropped(self) -> int:
        """How many items are longer than ``max_seconds`` (and were cut)."""
        return sum(self.segments.duration(u) * SAMPLE_RATE > self.max_samples for u in self.ids)


def extract(extractor, audios: Sequence[np.ndarray]) -> dict[str, Any]:
    """Feature-extract a batch (padded to its longest item where the extractor pads)."""
    from transformers import Wav2Vec2FeatureExtractor

    kwargs = {"padding": True} if isinstance(extractor, Wav2Vec2FeatureExtractor) else {}
    return dict(extractor(list(audios), sampling_rate=SAMPLE_RATE, return_tensors="pt", **kwargs))


def unpadded_batches(extractor, batch_size: int) -> int:
    """wav2vec2-style extractors without an attention mask change outputs when padded: batch by one."""
    from transformers import Wav2Vec2FeatureExtractor

    if isinstance(extractor, Wav2Vec2FeatureExtractor) and not extractor.return_attention_mask:
        return 1
    return batch_size


class Collator:
    """Batches for the Trainer: feature-extracted audio plus ``labels`` (class index or target)."""

    def __init__(self, extractor, regression: bool):
        self.extractor, self.regression = extractor, regression

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = extract(self.extractor, [it["audio"] for it in items])
        dtype = torch.float32 if self.regression else torch.long
        batch["labels"] = torch.tensor(np.array([it["labels"] for it in items]), dtype=dtype)
        return batch


def is_ast(extractor) -> bool:
    from transformers import ASTFeatureExtractor

    return isinstance(extractor, ASTFeatureExtractor)


def fit_ast_normalisation(
    extractor, audios: Iterable[np.ndarray], total: int | None = None, progress: bool = True
) -> dict[str, float]:
    """Set AST's spectrogram ``mean``/``std`` from ``audios`` (pass the training split only).

    As in the AST fine-tuning tutorial: the mean of per-clip means and the mean of per-clip
    standard deviations of the un-normalised input spectrograms.
    """
    extractor.do_normalize = False
    means, stds = [], []
    for audio in tqdm(audios, total=total, desc="AST train-set mean/std", unit="utt", disable=not progress):
        x = extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="np")["input_values"]
        means.append(float(x.mean()))
        stds.append(float(x.std(ddof=1)))
    if not means:
        raise FinetuneError("no training audio to compute AST normalisation statistics")
    extractor.mean, extractor.std = float(np.mean(means)), float(np.mean(stds))
    extractor.do_normalize = True
    return {"mean": extractor.mean, "std": extractor.std}
