"""The embed stage: backbones, face cropping and the embed engine (segments → feature stores).

``backbones/`` holds one module per backbone type (registry and interface in ``backbones/base.py``),
``faces.py`` the face detectors the video backbones share, ``embed/`` the engine that turns a
corpus's segments into ``features/<corpus>/<backbone>.zarr`` through a content-addressed cache (local
or Ray executor). The store format itself is :mod:`pipeline.core.store`, because heads read it.

May import: :mod:`pipeline.core` and :mod:`pipeline.models` (model code shared with the heads).
"""
