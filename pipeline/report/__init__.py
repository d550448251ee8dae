"""The report stage: leaderboard (JSON + Markdown), the skipped-items report, plots and the offline HTML page.

``build`` reads every experiment JSON the run lists name; ``paired`` compares rows that share test
items (paired cluster bootstrap, permutation, McNemar, Holm); ``layers`` draws the layer-sweep plot;
``breakdown`` scores each system per speaker (or group); ``html`` renders the offline report page;
``figures`` saves the figures reproducibly (PNG, inline SVG).
May import: :mod:`pipeline.core` and :mod:`pipeline.experiment` (``results``, ``scoring``, ``stats``).
"""
