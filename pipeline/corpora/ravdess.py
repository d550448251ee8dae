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
which mixes male and female actors in every fold), ``loso`` (one fold per actor, 24 folds) or
``emobox`` (EmoBox's 6 published actor-independent folds of the 1,440 speech clips, exactly:
:mod:`pipeline.corpora._emobox`; with ``modality: audiovisual`` the 01- mp4s of the same recordings
take the folds of EmoBox's 03- wavs, and sung clips, which EmoBox does not list, are dropped and
counted in ``info["emobox"]["not_listed"]``).

A file whose name does not parse (wrong field count, out-of-range code) is an error naming it.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from pipeline.core.errors import ManifestError
from pipeline.core.manifest import Corpus, Task, display_path, validate
from pipeline.corpora._emobox import EmoboxOptions, apply_emobox
from pipeline.corpora.base import FoldSettings, register_corpus
from pipeline.corpora.common import CodeTables, assign_folds, corpus_root, find_media, media, parse_code

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


class RavdessSettings(FoldSettings, EmoboxOptions):
    protocol: Literal["kfold", "loso", "emobox"] = "kfold"
    modality: Literal["audio", "audiovisual"] = "audio"
    song: bool = False  # true: also the sung clips


@register_corpus(
    "ravdess", settings=RavdessSettings, tasks="emotion (8)",
    protocol="`kfold` 5 actor-independent folds (`loso`, `emobox`)", unit="actor",
)
def prepare_ravdess(s: RavdessSettings, out_dir: Path) -> Corpus:
    """Discover the RAVDESS clips of the chosen modality and build an actor-independent CV manifest."""
    root = corpus_root(s.root, "ravdess")
    modality = s.modality
    protocol = s.protocol
    song = s.song

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
    if protocol == "emobox":
        # EmoBox lists the audio-only wavs (modality 03); the AV clip (01) of a recording has its codes.
        key_to_id = (lambda key: "01" + key[2:]) if modality == "audiovisual" else None
        df, info["emobox"] = apply_emobox(df, "ravdess", s, display_path(root), key_to_id=key_to_id)
    else:
        info.update(assign_folds(df, "speaker", protocol, s.folds))
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
