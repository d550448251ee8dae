"""The experiment runner: protocol (folds, dev carving), scoring and results, once for every head.

``protocol`` plans folds, ``scoring`` evaluates a split and summarises seeds and folds, ``results``
writes and reads the metrics contract (experiment JSON, leaderboard rows), and ``runner`` ties them
together around a head family's :class:`~pipeline.experiment.runner.Learner` (fit on a fold,
predict a split).

May import: :mod:`pipeline.core` only. Used by the probe, fuse, finetune and Audio-LLM stages and
(``results``) by the report.
"""
