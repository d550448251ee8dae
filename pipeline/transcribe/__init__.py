"""The transcribe stage: fill missing transcripts with ASR (Whisper or funasr), so text backbones apply.

``asr`` holds :class:`~pipeline.transcribe.asr.TranscriptsSettings` (the ``transcripts`` section)
and the backends. May import: :mod:`pipeline.core` only.
"""
