"""Fake-data generators, one per corpus (``tests/data/<corpus>/data.py``), torchgeo style.

Each writes a tiny tree in the corpus's exact real layout — short synthetic media, label files with
the real columns — so recipes are tested without licence-restricted data.
"""
