"""The segment stage: corpus media → the segments store (16 kHz mono audio + sampled RGB frames).

``decode`` holds :class:`~pipeline.segment.decode.SegmentSettings` (the ``segment`` section) and
:func:`~pipeline.segment.decode.segment_corpus`. The store's layout and reader live in
:mod:`pipeline.core.segments`, because every later stage reads it.

May import: :mod:`pipeline.core` only.
"""
