"""Command-line tools (not DVC stages): ``validate`` (check params.yaml), ``catalog`` (what the
registries hold), ``predict`` (a saved model on a new file), ``models`` (fetch pretrained weights),
``byof`` (import or export precomputed features) and ``hear_export`` (any audio backbone as a HEAR 2021
module, for ``hear-validator`` and heareval). Tools may import any package."""
