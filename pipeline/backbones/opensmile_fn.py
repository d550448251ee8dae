"""openSMILE functionals (eGeMAPSv02 by default): the classic hand-crafted paralinguistic baseline.

The ``opensmile`` wheel ships the SMILExtract binary and the configs, so this runs offline.
Options: ``feature_set`` (eGeMAPSv02, ComParE_2016, ...), ``lld`` (also store low-level
descriptors as frame features, 100 frames/s).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from pipeline.backbones import register_backbone
from pipeline.backbones.base import Backbone, BackboneError, Embedding

SAMPLE_RATE = 16000


@register_backbone("opensmile")
class OpenSmileBackbone(Backbone):
    modality = "audio"

    def __init__(self, name: str, cfg: dict[str, Any]):
        super().__init__(name, cfg)
        import opensmile

        self._opensmile = opensmile
        set_name = cfg.get("feature_set", "eGeMAPSv02")
        try:
            feature_set = getattr(opensmile.FeatureSet, set_name)
        except AttributeError as err:
            known = [m.name for m in opensmile.FeatureSet]
            raise BackboneError(f"backbones.{name}: unknown openSMILE feature_set {set_name!r}; known: {known}") from err
        self.feature_set = feature_set
        self.has_frames = bool(cfg.get("lld", False))
        self.functionals = opensmile.Smile(feature_set=feature_set, feature_level=opensmile.FeatureLevel.Functionals)
        self.lld = (
            opensmile.Smile(feature_set=feature_set, feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
            if self.has_frames
            else None
        )

    def embed(self, batch: Sequence[np.ndarray]) -> list[Embedding]:
        out = []
        for audio in batch:
            pooled = self.functionals.process_signal(audio, SAMPLE_RATE).to_numpy(np.float32)[0]
            frames = self.lld.process_signal(audio, SAMPLE_RATE).to_numpy(np.float32) if self.lld else None
            out.append(Embedding(pooled, frames))
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "source": f"opensmile/{self.feature_set.name}",
            "revision": f"opensmile=={self._opensmile.__version__}",
            "frame_rate": 100.0 if self.has_frames else None,
            "feature_names": list(self.functionals.feature_names),
        }
