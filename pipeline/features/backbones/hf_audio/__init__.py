"""Generic transformers audio encoders, driven by the checkpoint's ``config.json`` (``model_type``).

Weights come from ``source``: a local directory (``save_pretrained`` layout) or a hub id already in
the local Hugging Face cache — this code never downloads. Licences are those of the checkpoint
(e.g. facebook/wav2vec2-*, facebook/hubert-*, facebook/data2vec-audio-*, openai/whisper-*,
Qwen/Qwen2-Audio-7B*: Apache-2.0; microsoft/wavlm-*, TencentGameMate/chinese-hubert-*: MIT;
MIT/ast-*: BSD-3-Clause — read the model card of the checkpoint you use). Dims/layers follow the
config: e.g. base models 768-d × 13 states, large 1024-d × 25, whisper-large-v3 1280-d × 33,
the Qwen2-Audio tower 1280-d × 33, AST base 768-d × 13.

Families (chosen from ``model_type``):

* **SSL** — wav2vec2, hubert (incl. TencentGameMate/chinese-hubert-large: layer-norm conv stack
  without bias, stable layer norm, feature-projection layer norm), wavlm, data2vec-audio (tested);
  wav2vec2-conformer, unispeech, unispeech-sat take the same path untested. ``AutoModel`` +
  ``Wav2Vec2FeatureExtractor`` (without a ``preprocessor_config.json``: normalised inputs for
  layer-norm conv stacks, raw for group-norm ones, as transformers' checkpoints do). Frame rate
  16000 / prod(``conv_stride``) (50/s for the standard stack). Inputs shorter than the conv stack's
  receptive field (400 samples for the standard stack) are zero-padded.
* **Whisper** — the encoder only (``WhisperEncoder``; decoder tensors are never read). The feature
  extractor always pads to ``chunk_length`` (30 s), so the encoder frames are trimmed to the real
  input length before pooling: otherwise short clips would be pooled mostly over padding. Frame rate
  sampling_rate / (hop_length × conv stride), the stride being (chunk frames / max_source_positions)
  = 2, i.e. 50/s.
* **Qwen2-Audio** — the audio tower only (``Qwen2AudioEncoder``, ~0.6 B parameters). From a full
  Qwen2-Audio checkpoint only the ``audio_tower.*`` tensors are read (the 7B language model is
  never loaded); a directory holding just the encoder (``model_type: qwen2_audio_encoder``) also
  works. The tower ends with a 2× average pool, so its last hidden state runs at 25 frames/s while
  the earlier ones run at 50/s; the earlier ones are average-pooled the same way so that all
  L = encoder_layers + 1 states share the 25/s time axis. Trimmed to the real length like Whisper.
* **AST** (``audio-spectrogram-transformer``) — ``ASTModel`` + ``ASTFeatureExtractor``; params
  ``mean``/``std`` override the extractor's normalisation (users compute them on their own data).
  AST has no time axis of its own: its tokens are overlapping 2-D (frequency × time) patches plus
  two summary tokens. Decision: ``frames`` are the patch tokens averaged over the frequency rows of
  each time column — a [T, D] sequence at 100 / ``time_stride`` per second (10/s by default),
  trimmed to the columns that overlap real audio (the extractor pads every input to
  ``max_length`` = 10.24 s). ``pooled`` pools those columns per layer (``ast_pooling: tokens``,
  default) or takes the model's own summary, the mean of the CLS and distillation tokens, per layer
  (``ast_pooling: cls``). The last of the L states is the model's output after its final LayerNorm
  (``last_hidden_state``; its cls summary is ``pooler_output``), not transformers'
  ``hidden_states[-1]``, which for AST stops before that LayerNorm.

Loading is strict (:mod:`pipeline.features.backbones._loading`, and for the Whisper encoder and the
Qwen2-Audio tower :func:`.checkpoint.load_submodule`): a missing, unexpected or mis-shaped tensor is
a BackboneError naming it. Tensors beside the model (task heads such as ``classifier.*`` /
``projector.*`` / ``lm_head.*``, pre-training heads, a Whisper decoder, Qwen2-Audio's language model)
are not read; ``describe()`` records them (``load_report.unused_tensors``: their top-level names; for the
Whisper encoder and the Qwen2-Audio tower ``loaded``: how many of the checkpoint's tensors were
read). SSL checkpoints without ``masked_spec_embed`` (SpecAugment's training-time mask) load too
(``load_report.not_loaded``).

Every family: ``pooled`` is [L, D] (L = num_hidden_layers + 1, every hidden state pooled over time
with ``pooling``: mean | mean+std | max); ``frames`` are the frames of ``frame_layer`` (default
last). Inputs longer than ``window_seconds`` (default 30; capped at the model's fixed input length
for Whisper/Qwen2-Audio/AST) are cut into near-equal windows whose frames are concatenated — nothing
is silently truncated.

Batching: the inputs the driver passes to :meth:`embed` are cut into windows and grouped into
forward passes of at most ``batch_seconds`` (default 120) of *padded* audio, longest first. SSL
models get a padded batch with an attention mask only where padding provably does not change the
real frames (checked by the tests); elsewhere they run one window at a time (see
:func:`~pipeline.features.backbones.hf_audio.families.ssl_padding_problem`). Whisper, Qwen2-Audio and AST pad every window to a fixed length
anyway, so their batches are exact.

Params example::

    backbones:
      wavlm_large: {type: hf_audio, source: microsoft/wavlm-large, frame_layer: -1, batch_seconds: 120}
      whisper_small: {type: hf_audio, source: models/pretrained/whisper_small}
      qwen2_audio_tower: {type: hf_audio, source: Qwen/Qwen2-Audio-7B-Instruct, precision: bf16}
      ast: {type: hf_audio, source: MIT/ast-finetuned-audioset-10-10-0.4593, mean: -4.27, std: 4.57}
"""
