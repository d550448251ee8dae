"""Backbones: pretrained encoders that turn segments into features, one type per module.

Each module registers one backbone type with :func:`~pipeline.features.backbones.base.register_backbone`
(the type's class plus its settings schema); the smallest example is ``opensmile.py``. Modules keep
heavy imports (torch, transformers, funasr) inside methods so that discovering every type is cheap.

May import: :mod:`pipeline.core`, :mod:`pipeline.features.faces`, and each other's helpers.
"""
