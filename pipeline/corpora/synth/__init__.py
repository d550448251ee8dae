"""Synthetic media generators (speech via espeak-ng, cartoon faces via OpenCV) for the demo corpus."""
