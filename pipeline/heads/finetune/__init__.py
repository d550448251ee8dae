"""Fine-tuning a transformers audio encoder end to end on the segments: LoRA adapters or full.

Where the probe trains a head on cached features, these heads train the encoder itself on
``data/<corpus>/segments.zarr`` audio, one model per task (and per fold). Two modes
(``heads.<name>.type``):

- ``lora``: peft LoRA adapters on the attention projections of an ``AutoModelForAudioClassification``
  (AST, HuBERT, WavLM, wav2vec2, data2vec-audio, ...); the classification head (``classifier``
  and, for the wav2vec2 family, ``projector``) is trained in full through ``modules_to_save``.
  ``target_modules`` defaults to ``q_proj``/``v_proj`` (HuBERT, WavLM, wav2vec2, and AST in
  transformers ≥ 5) or ``query``/``value`` (AST in transformers 4), whichever the model has.
- ``full``: every weight is trained (the AST ESC-50 tutorial recipe); the wav2vec2 family keeps its
  convolutional feature encoder frozen (``freeze_feature_encoder: true``), as is customary.

The encoder is the run item's backbone (``run.finetune: [{head: lora, backbone: ast}]``): the
head's own ``source`` or, by default, that of ``backbones.<backbone>`` (a local directory or a hub
id already in the local cache; never downloaded).

Modules: ``settings``, ``augment`` (audiomentations, training only), ``data`` (examples, AST
normalisation), ``model`` (build, save, load, predict), ``trainer`` (one model with the
transformers Trainer and DVCLive), ``learner`` (the experiment: folds, scoring, outputs).

May import: :mod:`pipeline.core`, :mod:`pipeline.experiment`, :mod:`pipeline.heads.base`.
"""

from pipeline.heads.base import HEADS

HEADS.add_scope("pipeline.heads.finetune")
