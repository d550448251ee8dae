"""AffectBench library: corpora → segments → feature stores → heads → metrics.

Stage entry points live in ``stages/``; everything they call lives here so it can be imported,
tested and reused outside DVC.
"""

__version__ = "0.1.0"
