"""Command-line tools (not DVC stages): ``validate`` (check params.yaml), ``catalog`` (what the
registries hold), ``predict`` (a saved model on a new file), ``models`` (fetch pretrained weights)
and ``byof`` (import or export precomputed features). Tools may import any package."""
