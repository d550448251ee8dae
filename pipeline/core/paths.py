"""Where every stage reads and writes (mirrors the ``outs`` in dvc.yaml)."""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")
FEATURES = Path("features")
MODELS = Path("models")
METRICS = Path("metrics")


def inputs_dir(corpus: str) -> Path:
    return DATA / corpus / "inputs"


def prepared_dir(corpus: str) -> Path:
    return DATA / corpus / "prepared"


def segments_path(corpus: str) -> Path:
    return DATA / corpus / "segments.zarr"


def segment_report(corpus: str) -> Path:
    return METRICS / "segment" / f"{corpus}.json"


def transcripts_path(corpus: str) -> Path:
    return DATA / corpus / "transcripts.parquet"


def transcripts_report(corpus: str) -> Path:
    return METRICS / "transcripts" / f"{corpus}.json"


def store_path(corpus: str, backbone: str) -> Path:
    return FEATURES / corpus / f"{backbone}.zarr"


def model_dir(corpus: str, backbone: str, head: str) -> Path:
    return MODELS / corpus / backbone / head


def experiment_path(corpus: str, backbone: str, head: str, metrics_dir: Path = METRICS) -> Path:
    return metrics_dir / "experiments" / corpus / backbone / f"{head}.json"


def predictions_dir(corpus: str, backbone: str, head: str, metrics_dir: Path = METRICS) -> Path:
    return metrics_dir / "predictions" / corpus / backbone / head


def headline_path(corpus: str, backbone: str, head: str, metrics_dir: Path = METRICS) -> Path:
    """The small headline metrics file DVC reads (``metrics:``, committed to git) of one experiment."""
    return metrics_dir / "headline" / corpus / backbone / f"{head}.json"


def headline_for(experiment_json: str | Path) -> Path:
    """The headline file of the experiment JSON at ``experiment_json``: ``<m>/experiments/<c>/<b>/<h>.json``
    has ``<m>/headline/<c>/<b>/<h>.json`` (:func:`headline_path`); a JSON elsewhere (a test's, a tool's)
    has ``<stem>.headline.json`` beside it."""
    path = Path(experiment_json)
    if len(path.parts) >= 4 and path.parts[-4] == "experiments":
        return path.parents[3] / "headline" / Path(*path.parts[-3:])
    return path.with_name(f"{path.stem}.headline.json")
