"""Heads: what trains on features or segments, one registry (:mod:`pipeline.heads.base`) for all.

``base`` (registry, shared settings, :func:`~pipeline.heads.base.build_head`), probe heads
(``logreg``, ``ridge``, ``torch_heads``: ``linear``/``mlp``, ``batched_logreg``, ``layers``), fusion
heads (``fusion``), the feature-head driver (``probe``: probes and fusion through the experiment
runner), ``finetune/`` (LoRA / full fine-tuning) and ``audio_llm/`` (the two-stage Audio-LLM).

May import: :mod:`pipeline.core` and :mod:`pipeline.experiment`. Used by the probe, fuse, finetune
and audio_llm stages.
"""
