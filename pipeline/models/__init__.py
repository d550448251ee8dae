"""Model implementations of our own that more than one stage runs (today: LanguageBind's towers).

A backbone (:mod:`pipeline.features`, the embed stage) and a fine-tuning head (:mod:`pipeline.heads`,
the finetune stage) may run the same network: LanguageBind's text, video and audio towers are both the
``languagebind_*`` backbones and what ``lora_multimodal`` fine-tunes. Their modelling code, checkpoint
reading and preprocessing live here, so that only the embed and finetune stages depend on it (in
``pipeline/core`` every stage would rerun when it changes).

May import: :mod:`pipeline.core` only. Imported by :mod:`pipeline.features` and :mod:`pipeline.heads`.
"""
