"""Heads: what trains on features or segments, one registry (:mod:`pipeline.heads.base`) for all.

``base`` (the scoped head registry and the settings every head shares) and one package per head
family — ``probe/`` (probe heads and the probe runner), ``fusion/`` (fusion heads over several
stores; wraps probe heads), ``finetune/`` (LoRA / full fine-tuning) and ``audio_llm/`` (the
two-stage Audio-LLM). A stage imports its own family only, so its DVC deps are
``heads/__init__.py``, ``heads/base.py`` and that family's folder.

May import: :mod:`pipeline.core`, :mod:`pipeline.experiment` and :mod:`pipeline.models` (model code
shared with the backbones: the finetune family); a family imports ``base`` and the
families it wraps (fusion → probe), never a sibling otherwise. Used by the probe, fuse, finetune and
audio_llm stages.
"""
