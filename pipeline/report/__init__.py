"""The report stage: leaderboard (JSON + Markdown), the skipped-items report and plots.

``build`` reads every experiment JSON the run lists name; ``layers`` draws the layer-sweep plot.
May import: :mod:`pipeline.core` and :mod:`pipeline.experiment.results`.
"""
