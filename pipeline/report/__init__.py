"""The report stage: leaderboard (JSON + Markdown), the skipped-items report and plots.

``build`` reads every experiment JSON the run lists name; ``paired`` compares rows that share test
items (paired cluster bootstrap, permutation, McNemar, Holm); ``layers`` draws the layer-sweep plot.
May import: :mod:`pipeline.core` and :mod:`pipeline.experiment` (``results``, ``scoring``, ``stats``).
"""
