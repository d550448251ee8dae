"""Probe heads on one backbone's pooled features, and the probe stage's runner.

``base`` (feature-head settings, :func:`~pipeline.heads.probe.base.build_head`), the heads
(``logreg`` with its batched ``batched_logreg`` sweep, ``ridge``, ``torch_heads``: ``linear``/``mlp``),
``layers`` (``layer: best`` for heads without their own layer handling) and ``run`` (the
:class:`~pipeline.heads.probe.run.FeatureLearner` and :func:`~pipeline.heads.probe.run.run_probe`).

A new probe head is one module here: its settings class and ``@register_head(..., family="probe")``.
May import: :mod:`pipeline.core`, :mod:`pipeline.experiment`, :mod:`pipeline.heads.base`.
"""

from pipeline.heads.base import HEADS

HEADS.add_scope("pipeline.heads.probe")
