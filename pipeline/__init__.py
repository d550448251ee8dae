"""AffectBench library: corpora → segments → feature stores → heads → metrics.

Each subpackage is a dependency unit: a DVC stage depends on the packages its module imports, and
a package imports only the ones its ``__init__`` names (``tests/test_import_closure.py`` checks the
stages' deps against their import closures):

- :mod:`pipeline.core` — shared by everything; imports nothing else from the project;
- :mod:`pipeline.corpora` (prepare), :mod:`pipeline.segment`, :mod:`pipeline.transcribe` — each
  imports :mod:`pipeline.core` only;
- :mod:`pipeline.models` — our own implementations of networks both a backbone and a head run
  (LanguageBind's towers); imports :mod:`pipeline.core`;
- :mod:`pipeline.features` (embed) — imports core and models;
- :mod:`pipeline.experiment` — the runner every head uses; imports :mod:`pipeline.core`;
- :mod:`pipeline.heads` (probe, fuse, finetune, audio_llm) — imports core and experiment (finetune: and models);
- :mod:`pipeline.report` — imports core and :mod:`pipeline.experiment.results`;
- :mod:`pipeline.tools` — command-line tools, not stages: may import anything.

Stage entry points live in ``stages/``; everything they call lives here so it can be imported,
tested and reused outside DVC.
"""

__version__ = "0.1.0"
