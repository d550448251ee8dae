"""Where every stage reads and writes (mirrors the ``outs`` in dvc.yaml)."""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")
FEATURES = Path("features")
MODELS = Path("models")
METRICS = Path("metrics")


def inputs_dir(corpus: str) -> Path:
    return DATA / corpus / "inputs"


def inputs_listing(corpus: str) -> Path:
    return DATA / corpus / "inputs.json"


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
