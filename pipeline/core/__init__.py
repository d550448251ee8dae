"""Foundations every stage shares; imports nothing else from the project.

``errors`` (the one error hierarchy), ``config`` (params.yaml, the ``run`` section), ``settings``
(typed, validated params sections), ``registry`` (decorator registries), ``paths``, ``io`` (atomic
outputs), ``zarrio``, ``hashing`` (content keys, params hashes, import closures and code versions),
``manifest`` (the corpus contract), ``media`` (ffmpeg decoding), ``segments`` and ``store`` (the
segments and feature stores: the contracts between stages), ``metrics``, ``audio`` (16 kHz and
windowing), ``runtime`` (devices, dtypes, threads, model sources) and ``funasr``.
"""
