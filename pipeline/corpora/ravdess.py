"""RAVDESS: the Ryerson Audio-Visual Database of Emotional Speech and Song.

Source: Livingstone & Russo (2018), "The Ryerson Audio-Visual Database of Emotional Speech and
Song (RAVDESS)", PLoS ONE 13(5): e0196391; https://zenodo.org/record/1188976.
Licence: CC BY-NC-SA 4.0.

Layout (as unzipped; files are discovered by a recursive glob, so a flat folder works too)::

    <root>/Actor_NN/MM-VV-EE-II-SS-RR-AA.wav    audio-only (modality 03), 48 kHz
    <root>/Actor_NN/MM-VV-EE-II-SS-RR-AA.mp4    full AV (01) or video-only (02)

Filename code: MM modality (01 full AV, 02 video-only, 03 audio-only); VV vocal channel (01 speech,
02 song); EE emotion (01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust,
08 surprised); II intensity (01 normal, 02 strong; neutral has no strong); SS statement (01 "Kids
are talking by the door", 02 "Dogs are sitting by the door"); RR repetition; AA actor 01–24 (odd =
male, even = female). 24 actors × 60 speech clips per modality; song (1012 clips) has no actor 18.

Options: ``modality: audio`` (default; the 03- wavs) or ``audiovisual`` (the 01- mp4s, audio and
video from the same file); ``song: false`` (default: speech only; true adds the sung clips).
Files of another modality or of song when ``song`` is off are counted in ``info["excluded"]``.

Task: ``emotion`` (8 classes). Extra columns: ``gender``, ``intensity``, ``vocal_channel``; ``text``
is the statement.
Protocol: ``kfold`` (default; actor-independent, ``folds`` = 5, sorted actors dealt round-robin,
which mixes male and female actors in every fold) or ``loso`` (one fold per actor, 24 folds).

A file whose name does not parse (wrong field count, out-of-range code) is an error naming it.

This module also holds the filename-code helpers the other coded-filename recipes (``cremad``,
``emodb``, ``esc50``) share: :func:`parse_code`, :func:`find_media`, :func:`media_dir`.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from pipeline.corpora import register_corpus
from pipeline.corpora.common import corpus_root, media
from pipeline.corpora.common import assign_folds, choose
from pipeline.manifest import Corpus, ManifestError, Task, display_path, validate

# --- filename-code helpers shared by the coded-filename recipes ---------------------------------

CodeTables = Mapping[str, Mapping[str, str] | None]


def _expected(table: Mapping[str, str]) -> str:
    codes = sorted(table)
    return f"{codes[0]}..{codes[-1]}" if len(codes) > 12 else ", ".join(codes)


def parse_code(path: Path, pattern: re.Pattern[str], scheme: str, tables: CodeTables) -> dict[str, str]:
    """Decode the fields of a coded file name (its stem must fully match ``pattern``).

    Each named group is looked up in ``tables[name]`` (code → value); a group without a table is
    returned as is. Errors start with the file path: a name that does not follow ``scheme`` (e.g. a
    wrong field count) or a code outside its table.
    """
    m = pattern.fullmatch(path.stem)
    if m is None:
        raise ManifestError(f"{path}: file name does not follow the naming scheme {scheme}")
    fields = {}
    for key, code in m.groupdict().items():
        table = tables.get(key)
        if table is None:
            fields[key] = code
        elif code in table:
            fields[key] = table[code]
        else:
            raise ManifestError(f"{path}: unknown {key} code {code!r} in {scheme} (expected {_expected(table)})")
    return fields


def media_dir(root: Path, sub: str) -> Path:
    """``root/sub`` when the release's folder is there, else ``root`` itself (flat copies)."""
    return root / sub if (root / sub).is_dir() else root


def find_media(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """Media files under ``folder`` (recursive, sorted); ids are file stems, so they must be unique.

    Dot-files are skipped: they are never corpus items (macOS ``._*`` resource forks, editor
    leftovers) and would otherwise fail the name check.
    """
    wanted = {s.lower() for s in suffixes}
    files = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in wanted and not p.name.startswith(".") and p.is_file()
    )
    seen: dict[str, Path] = {}
    for p in files:
        if p.stem in seen:
            raise ManifestError(f"{p}: duplicate id {p.stem!r} (also {seen[p.stem]})")
        seen[p.stem] = p
    return files


# --- RAVDESS --------------------------------------------------------------------------------------

EMOTIONS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
SCHEME = "MM-VV-EE-II-SS-RR-AA (modality-channel-emotion-intensity-statement-repetition-actor)"
PATTERN = re.compile(
    r"(?P<modality>[^-]+)-(?P<channel>[^-]+)-(?P<emotion>[^-]+)-(?P<intensity>[^-]+)"
    r"-(?P<statement>[^-]+)-(?P<repetition>[^-]+)-(?P<actor>[^-]+)"
)
TABLES: CodeTables = {
    "modality": {"01": "audiovisual", "02": "video-only", "03": "audio-only"},
    "channel": {"01": "speech", "02": "song"},
    "emotion": {f"{i:02d}": e for i, e in enumerate(EMOTIONS, start=1)},
    "intensity": {"01": "normal", "02": "strong"},
    "statement": {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"},
    "repetition": {"01": "1", "02": "2"},
    "actor": {f"{i:02d}": f"{i:02d}" for i in range(1, 25)},
}
MODALITIES = {"audio": "audio-only", "audiovisual": "audiovisual"}
COLUMNS = ["id", "speaker", "split", "fold", "audio", "video", "text",
           "emotion", "gender", "intensity", "vocal_channel"]  # fmt: skip


def _row(path: Path, fields: dict[str, str], root: Path, with_video: bool) -> dict[str, Any]:
    clip = media(root, path.relative_to(root).as_posix(), str(path))
    return {
        "id": path.stem,
        "speaker": fields["actor"],
        "audio": clip,
        "video": clip if with_video else "",
        "text": fields["statement"],
        "emotion": fields["emotion"],
        "gender": "male" if int(fields["actor"]) % 2 else "female",
        "intensity": fields["intensity"],
        "vocal_channel": fields["channel"],
    }


@register_corpus("ravdess")
def prepare_ravdess(cfg: dict[str, Any], out_dir: Path) -> Corpus:
    """Discover the RAVDESS clips of the chosen modality and build an actor-independent CV manifest."""
    root = corpus_root(cfg, "ravdess")
    modality = choose(cfg, "ravdess", "modality", MODALITIES, "audio")
    protocol = choose(cfg, "ravdess", "protocol", ("kfold", "loso"), "kfold")
    song = bool(cfg.get("song", False))

    rows, excluded = [], Counter()
    for path in find_media(root, (".wav", ".mp4")):
        fields = parse_code(path, PATTERN, SCHEME, TABLES)
        if fields["modality"] != MODALITIES[modality]:
            excluded[fields["modality"]] += 1
        elif fields["channel"] == "song" and not song:
            excluded["song"] += 1
        else:
            rows.append(_row(path, fields, root, modality == "audiovisual"))
    if not rows:
        code = "03-*.wav" if modality == "audio" else "01-*.mp4"
        raise ManifestError(
            f"{root}: no RAVDESS {modality} clips found (expected Actor_NN/{code}); excluded {dict(excluded)}"
        )

    df = pd.DataFrame(rows)
    info: dict[str, Any] = {"protocol": protocol, "modality": modality, "song": song, "excluded": dict(excluded)}
    info.update(assign_folds(df, "speaker", protocol, cfg, "ravdess"))
    df = df[COLUMNS]
    corpus = Corpus(
        name="ravdess",
        manifest=df,
        tasks=[Task("emotion", "classification", EMOTIONS)],
        root=display_path(root),
        info=info,
    )
    validate(corpus, display_path(root))
    return corpus
