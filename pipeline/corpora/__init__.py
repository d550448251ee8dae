"""Corpus recipes: one module per corpus (lhotse style), each registering a ``prepare`` function.

A recipe turns a corpus on disk (or, for ``demo``, one it synthesises) into a validated
:class:`pipeline.core.manifest.Corpus`. A new corpus is one module in this package with a function
decorated ``@register_corpus("name", settings=...)`` (see :mod:`pipeline.corpora.base`); its module
docstring says where the corpus comes from, its licence, layout, tasks and protocol. ``demo.py`` is
the template; ``common.py`` holds shared helpers; ``synth/`` generates the synthetic demo media.

May import: :mod:`pipeline.core` only. Used by the ``prepare`` stage.
"""
