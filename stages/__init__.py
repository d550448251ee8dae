"""Thin DVC stage entry points: ``python -m stages.<name> ...``; each reads its params section."""
