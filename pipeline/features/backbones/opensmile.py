"""openSMILE features: the classic hand-crafted paralinguistic baselines (eGeMAPS, ComParE).

Weights/source: none — the ``opensmile`` wheel (audEERING, openSMILE licence: free for research and
personal use, commercial use needs a licence) ships the SMILExtract binary and the standard configs,
so this runs offline and deterministically.

Options:

- ``feature_set``: ``eGeMAPSv02`` (default; 88 functionals, 25 LLDs), ``ComParE_2016`` (6373
  functionals, 65 LLDs), or any other ``opensmile.FeatureSet`` name (GeMAPSv01b, emobase, IS09 …
  IS13). Matched case-insensitively; ``egemaps``/``compare``/``gemaps`` are accepted shorthands.
- ``lld`` (bool, default false): also keep the low-level descriptors as frame features. All standard
  sets compute LLDs with a 10 ms hop, i.e. :data:`LLD_FRAME_RATE` = 100 frames/s (a little fewer
  frames than ``seconds * 100`` because the first frame needs a full analysis window).
- ``min_seconds`` (default 0.1): shorter inputs are zero-padded (and counted in ``describe()``),
  because openSMILE fills segments that are too short with NaN.

``pooled`` is the functionals vector [D] (not layered); ``frames`` the LLDs [T, n_lld].
``describe()`` records the feature names of both levels.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
from pydantic import StrictBool, field_validator

from pipeline.core.audio import SAMPLE_RATE, pad_to, seconds_to_samples
from pipeline.features.backbones.base import Backbone, BackboneSettings, Embedding, register_backbone

LLD_FRAME_RATE = 100.0  # every standard openSMILE config computes LLDs with a 10 ms frame step
ALIASES = {"egemaps": "eGeMAPSv02", "compare": "ComParE_2016", "gemaps": "GeMAPSv01b"}


def resolve_feature_set(set_name: Any):
    """Map a params value to an ``opensmile.FeatureSet`` member, case-insensitively."""
    import opensmile

    members = {m.name.lower(): m for m in opensmile.FeatureSet}
    key = str(set_name).strip().lower()
    key = ALIASES.get(key, key).lower()
    if key not in members:
        raise ValueError(
            f"unknown openSMILE feature_set {set_name!r}; "
            f"known: {sorted(m.name for m in opensmile.FeatureSet)} (or {sorted(ALIASES)})"
        )
    return members[key]


class OpenSmileSettings(BackboneSettings):
    feature_set: str = "eGeMAPSv02"  # any opensmile.FeatureSet name, case-insensitive, or an alias
    lld: StrictBool = False  # also store the low-level descriptors as frame features
    min_seconds: float = 0.1  # shorter inputs are zero-padded (openSMILE returns NaN for them)

    @field_validator("feature_set")
    @classmethod
    def _known_set(cls, value: str) -> str:
        # fails at validation time, not after segmenting a corpus; the canonical name makes `egemaps`
        # and `eGeMAPSv02` one cache key, as they are one computation
        return resolve_feature_set(value).name


@register_backbone(
    "opensmile", description="openSMILE functionals (eGeMAPS, ComParE, ...), optional LLD frames",
    settings=OpenSmileSettings, licence="openSMILE research licence", weights="ships in the wheel",
    verified="`opensmile.Smile.process_file` on the .wav: functionals and LLDs within 1e-5, equal frames",
    verified_by="tests/test_parity_wheels.py::test_opensmile_equals_smile_process_file",
)
class OpenSmileBackbone(Backbone):
    modality = "audio"

    def __init__(self, name: str, settings: OpenSmileSettings):
        super().__init__(name, settings)
        import opensmile

        self._opensmile = opensmile
        self.feature_set = resolve_feature_set(settings.feature_set)
        lld = settings.lld
        self.has_frames = lld  # instance override of the class default: frames only when asked for
        self.min_samples = seconds_to_samples(settings.min_seconds)
        level = opensmile.FeatureLevel
        self.functionals = opensmile.Smile(feature_set=self.feature_set, feature_level=level.Functionals)
        self.lld = (
            opensmile.Smile(feature_set=self.feature_set, feature_level=level.LowLevelDescriptors) if lld else None
        )
        self.n_padded = 0

    @staticmethod
    def _run(smile, audio: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():  # "Segment too short": we pad beforehand, see min_seconds
            warnings.simplefilter("ignore", UserWarning)
            return smile.process_signal(audio, SAMPLE_RATE).to_numpy(np.float32)

    def embed(self, batch: Sequence[np.ndarray]) -> list[Embedding]:
        out = []
        for audio in batch:
            audio, padded = pad_to(np.ascontiguousarray(audio, dtype=np.float32), self.min_samples)
            self.n_padded += padded
            pooled = self._run(self.functionals, audio)[0]
            frames = self._run(self.lld, audio) if self.lld is not None else None
            out.append(Embedding(pooled, frames))
        return out

    def describe(self) -> dict[str, Any]:
        info = {
            "source": f"opensmile/{self.feature_set.name}",
            "revision": f"opensmile=={self._opensmile.__version__}",
            "frame_rate": LLD_FRAME_RATE if self.lld is not None else None,
            "feature_set": self.feature_set.name,
            "feature_names": list(self.functionals.feature_names),
            "n_padded": self.n_padded,
        }
        if self.lld is not None:
            info["lld_names"] = list(self.lld.feature_names)
        return info
