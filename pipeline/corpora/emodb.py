"""Berlin EmoDB: the Berlin Database of Emotional Speech.

Source: Burkhardt, Paeschke, Rolfes, Sendlmeier & Weiss (2005), "A Database of German Emotional
Speech", Proc. Interspeech 2005, 1517–1520; http://emodb.bilderbar.info (mirror:
http://database.syntheticspeech.de). Licence: free for research use (listed as CC0 by its
maintainers).

Layout::

    <root>/wav/SSTTTEV.wav    16 kHz mono, 535 utterances (root may also hold the wavs directly)

Filename code: SS speaker (03, 08, 09, 10, 11, 12, 13, 14, 15, 16; 5 male: 03 10 11 12 15),
TTT text (a01 a02 a04 a05 a07 short, b01 b02 b03 b09 b10 long sentences — the German sentences
are the ``text`` column), E emotion letter (W Ärger/anger, L Langeweile/boredom, E Ekel/disgust,
A Angst/fear, F Freude/happiness, T Trauer/sadness, N neutral), V version letter (a, b, …).

Task: ``emotion`` (7 classes). Extra column: ``gender``.
Protocol: ``loso`` (default; one fold per speaker, 10 folds on the full corpus), ``kfold``
(``folds`` = 5, sorted speakers round-robin) or ``emobox`` (EmoBox's 5 published folds, exactly:
:mod:`pipeline.corpora._emobox`; they are *not* speaker-independent — every speaker is in every test
fold — so the speaker guard is off and ``info["emobox"]`` says so).

The other files of the release (``lablaut/``, ``labsilb/``, ``silb/``) are not read. A wav whose
name does not parse is an error naming the file.
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

EMOTIONS = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]
SENTENCES = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}
GENDER = {"03": "male", "08": "female", "09": "female", "10": "male", "11": "male",
          "12": "male", "13": "female", "14": "female", "15": "male", "16": "female"}  # fmt: skip
SCHEME = "SSTTTEV (speaker, text, emotion letter, version; e.g. 03a01Fa)"
PATTERN = re.compile(r"(?P<speaker>\d\d)(?P<text>[a-z]\d\d)(?P<emotion>[A-Z])(?P<version>[a-z])")
TABLES: CodeTables = {
    "speaker": {s: s for s in GENDER},
    "text": SENTENCES,
    "emotion": dict(zip("WLEAFTN", EMOTIONS)),
    "version": None,
}


class EmodbSettings(FoldSettings, EmoboxOptions):
    protocol: Literal["loso", "kfold", "emobox"] = "loso"


@register_corpus(
    "emodb", settings=EmodbSettings, tasks="emotion (7)", protocol="`loso`, 10 folds (`kfold`, `emobox`)", unit="speaker",
)
def prepare_emodb(s: EmodbSettings, out_dir: Path) -> Corpus:
    """Discover the EmoDB wavs and build a cross-validation manifest (speaker-independent but for ``emobox``)."""
    root = corpus_root(s.root, "emodb")
    protocol = s.protocol

    rows = []
    for path in find_media(media_dir(root, "wav"), (".wav",)):
        fields = parse_code(path, PATTERN, SCHEME, TABLES)
        rows.append(
            {
                "id": path.stem,
                "speaker": fields["speaker"],
                "audio": media(root, path.relative_to(root).as_posix(), str(path)),
                "video": "",
                "text": fields["text"],
                "emotion": fields["emotion"],
                "gender": GENDER[fields["speaker"]],
            }
        )
    if not rows:
        raise ManifestError(f"{root}: no EmoDB wavs found (expected wav/SSTTTEV.wav)")

    df = pd.DataFrame(rows)
    info: dict[str, Any] = {"protocol": protocol}
    if protocol == "emobox":
        df, info["emobox"] = apply_emobox(df, "emodb", s, display_path(root))
    else:
        info.update(assign_folds(df, "speaker", protocol, s.folds))
    df = df[["id", "speaker", "split", "fold", "audio", "video", "text", "emotion", "gender"]]
    corpus = Corpus("emodb", df, [Task("emotion", "classification", EMOTIONS)], display_path(root), info)
    validate(corpus, display_path(root), speakers_shared=protocol == "emobox")
    return corpus
