"""Fusion heads over several backbones' pooled features, and the fuse stage's runner.

``heads`` (``concat``, ``late``, ``attention``; each wraps probe heads from :mod:`pipeline.heads.probe`)
and ``run`` (align the member stores by id, then fit through the probe's learner).

May import: :mod:`pipeline.core`, :mod:`pipeline.experiment`, :mod:`pipeline.heads.base`,
:mod:`pipeline.heads.probe`.
"""

from pipeline.heads.base import HEADS

HEADS.add_scope("pipeline.heads.fusion")
