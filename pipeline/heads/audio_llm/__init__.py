"""Two-stage Audio-LLM head (seed 001) and its audio-visual extension (seed 004).

Frozen frame features from a feature store (the run item's ``backbone``: ``egemaps``; or
``egemaps+fer``, whose second store's frames get their own projector) become soft tokens in a
Qwen2.5 chat prompt (settings: ``heads.<name>`` with ``type: audio_llm``, see :mod:`.settings`):

1. ``align`` (:func:`pipeline.heads.audio_llm.train.run_align`): only the projector(s) train, the LLM is
   frozen; targets are transcripts or templated descriptions of *training* utterances.
2. ``instruct`` (:func:`pipeline.heads.audio_llm.train.run_instruct`): projector(s) + LoRA learn to
   answer emotion questions in English and Chinese, loss on answer tokens only; the best epoch by
   dev UAR is kept, LoRA is merged into the base weights and saved (``merged/``) with
   ``projector.pt`` beside it.
3. ``eval`` (:func:`pipeline.heads.audio_llm.evaluate.run_eval`): greedy answers on dev and test, parsed
   back to labels (:mod:`pipeline.heads.audio_llm.parse`), scored by the experiment runner.

Modules: ``settings``, ``plan`` (rows, folds, paths; registers the head type), ``data`` (examples,
frame bank), ``model`` (projector, Audio-LLM), ``parse`` (answer words and parsing), ``train``,
``evaluate``.

May import: :mod:`pipeline.core`, :mod:`pipeline.experiment`, :mod:`pipeline.heads.base`.
"""

from pipeline.core.errors import HeadError
from pipeline.heads.base import HEADS

HEADS.add_scope("pipeline.heads.audio_llm")


class AudioLLMError(HeadError):
    """Bad Audio-LLM input or params (a HeadError, so stage entry points print it as one line)."""
