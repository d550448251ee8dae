"""CREMA-D: the Crowd-sourced Emotional Multimodal Actors Dataset.

Source: Cao, Cooper, Keutmann, Gur, Nenkova & Verma (2014), "CREMA-D: Crowd-sourced Emotional
Multimodal Actors Dataset", IEEE Trans. Affective Computing 5(4); https://github.com/CheyneyComputerScience/CREMA-D
(media through Git LFS). Licence: Open Database License (ODbL) v1.0, contents under the Database
Contents License.

Layout::

    <root>/AudioWAV/{ActorID}_{Sentence}_{Emotion}_{Level}.wav     16 kHz mono (7,442 clips)
    <root>/VideoFlash/{ActorID}_{Sentence}_{Emotion}_{Level}.flv   audio-visual (modality: audiovisual)

(``root`` may also be the AudioWAV / VideoFlash folder itself.) ActorID 1001–1091 (91 actors);
Sentence one of 12 codes (IEO "It's eleven o'clock", TIE, IOM, IWW, TAI, MTI, IWL, ITH, DFA, ITS,
TSI, WSI — the text column carries the sentence); Emotion ANG, DIS, FEA, HAP, NEU, SAD; Level LO,
MD, HI (only sentence IEO) or XX (unspecified).

Options: ``modality: audio`` (default, the wavs) or ``audiovisual`` (the flv clips, audio and
video from the same file).
Task: ``emotion`` (6 classes: anger, disgust, fear, happy, neutral, sad) — the emotion the actor
was asked to portray (the file name), not the crowd-perceived one (``processedResults/``, unused).
Extra column: ``intensity`` (low/medium/high/unspecified).
Protocol: ``kfold`` (default; actor-independent, ``folds`` = 5, sorted actors round-robin),
``loso`` (one fold per actor, 91 folds) or ``emobox`` (EmoBox's one published train/test split,
5,586 / 1,856 clips, exactly: :mod:`pipeline.corpora._emobox`). EmoBox's split is *not*
actor-independent (all 91 actors are on both sides), so the speaker guard is off and
``info["emobox"]`` says so; it has no dev set, so dev is carved from held-out training actors, as
for any official split without dev.

Quirks: a few clips in the public release are reported unreadable or empty; the recipe lists every
file it finds and the segment stage reports bad media by name (``on_bad_media``). A file name that
does not parse is an error naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from pipeline.core.errors import ManifestError
from pipeline.core.manifest import Corpus, Task, display_path, validate
from pipeline.corpora._emobox import EmoboxOptions, apply_emobox
from pipeline.corpora.base import FoldSettings, register_corpus
from pipeline.corpora.common import CodeTables, assign_folds, corpus_root, find_media, media, media_dir, parse_code

EMOTIONS = ["anger", "disgust", "fear", "happy", "neutral", "sad"]
SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
SCHEME = "{ActorID}_{Sentence}_{Emotion}_{Level} (e.g. 1001_IEO_ANG_HI)"
PATTERN = re.compile(r"(?P<actor>[^_]+)_(?P<sentence>[^_]+)_(?P<emotion>[^_]+)_(?P<level>[^_]+)")
TABLES: CodeTables = {
    "actor": {str(a): str(a) for a in range(1001, 1092)},
    "sentence": SENTENCES,
    "emotion": dict(zip(["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"], EMOTIONS)),
    "level": {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"},
}
# modality → (release folder, file suffix)
MODALITIES = {"audio": ("AudioWAV", ".wav"), "audiovisual": ("VideoFlash", ".flv")}


class CremadSettings(FoldSettings, EmoboxOptions):
    protocol: Literal["kfold", "loso", "emobox"] = "kfold"
    modality: Literal["audio", "audiovisual"] = "audio"


@register_corpus(
    "cremad", settings=CremadSettings, tasks="emotion (6)", protocol="`kfold` 5 actor-independent folds (`loso`, `emobox`)",
    unit="actor",
)
def prepare_cremad(s: CremadSettings, out_dir: Path) -> Corpus:
    """Discover the CREMA-D clips and build an actor-independent cross-validation manifest."""
    root = corpus_root(s.root, "cremad")
    modality = s.modality
    protocol = s.protocol
    folder, suffix = MODALITIES[modality]

    rows = []
    for path in find_media(media_dir(root, folder), (suffix,)):
        fields = parse_code(path, PATTERN, SCHEME, TABLES)
        clip = media(root, path.relative_to(root).as_posix(), str(path))
        rows.append(
            {
                "id": path.stem,
                "speaker": fields["actor"],
                "audio": clip,
                "video": clip if modality == "audiovisual" else "",
                "text": fields["sentence"],
                "emotion": fields["emotion"],
                "intensity": fields["level"],
            }
        )
    if not rows:
        raise ManifestError(f"{root}: no CREMA-D {modality} clips found (expected {folder}/*{suffix})")

    df = pd.DataFrame(rows)
    info: dict[str, Any] = {"protocol": protocol, "modality": modality}
    if protocol == "emobox":
        df, info["emobox"] = apply_emobox(df, "cremad", s, display_path(root))
    else:
        info.update(assign_folds(df, "speaker", protocol, s.folds))
    columns = ["id", "speaker", "split", "fold", "audio", "video", "text", "emotion", "intensity"]
    df = df[[c for c in columns if c in df.columns]]
    corpus = Corpus("cremad", df, [Task("emotion", "classification", EMOTIONS)], display_path(root), info)
    validate(corpus, display_path(root), speakers_shared=protocol == "emobox")
    return corpus
