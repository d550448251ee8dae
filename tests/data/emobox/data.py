"""Write a fake EmoBox ``data/<corpus>/`` folder in EmoBox's own layout (emo-box/EmoBox).

``write(data_dir, corpus, rows)`` takes ``(key, emo, part)`` rows — ``key`` without the
``<corpus>-`` prefix, ``emo`` EmoBox's raw label, ``part`` a fold number (cross-validation: the fold
whose test file holds the item; every other fold's train file gets it) or ``train``/``valid``/``test``
(a single ``fold_1``) — and writes ``<corpus>.jsonl``, ``label_map.json`` and
``fold_<k>/<corpus>_{train,valid,test}_fold_<k>.jsonl`` with EmoBox's fields (``key``, ``dataset``,
``wav``, ``type``, ``sample_rate``, ``num_frame``, ``task``, ``length``, ``emo``, ``channel``).
"""

from __future__ import annotations

import json
from pathlib import Path

SPLIT_PARTS = ("train", "valid", "test")


def _record(corpus: str, key: str, emo: str) -> dict:
    return {"key": f"{corpus}-{key}", "dataset": corpus, "wav": f"downloads/{corpus}/{key}.wav", "type": "raw",
            "sample_rate": 16000, "num_frame": 4800.0, "task": "category", "length": 0.3, "emo": emo, "channel": 1}


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def write(data_dir: Path, corpus: str, rows: list[tuple[str, str, str | int]],
          label_map: dict[str, str] | None = None) -> Path:
    """Write the fake EmoBox folder for ``corpus`` under ``data_dir``; return ``data_dir``."""
    data_dir = Path(data_dir)
    folder = data_dir / corpus
    records = [(_record(corpus, key, emo), str(part)) for key, emo, part in rows]
    _write_jsonl(folder / f"{corpus}.jsonl", [r for r, _ in records])
    labels = sorted({emo for _, emo, _ in rows})
    (folder / "label_map.json").write_text(json.dumps(label_map or {e: e.title() for e in labels}, indent=4))
    parts = {p for _, p in records}
    if parts <= set(SPLIT_PARTS):
        for part in SPLIT_PARTS:
            chosen = [r for r, p in records if p == part]
            if chosen or part != "valid":
                _write_jsonl(folder / "fold_1" / f"{corpus}_{part}_fold_1.jsonl", chosen)
        return data_dir
    for k in sorted(parts, key=int):
        sub = folder / f"fold_{k}"
        _write_jsonl(sub / f"{corpus}_test_fold_{k}.jsonl", [r for r, p in records if p == k])
        _write_jsonl(sub / f"{corpus}_train_fold_{k}.jsonl", [r for r, p in records if p != k])
    return data_dir
