"""Generate a tiny fake ECF 2.0 (SemEval-2024 Task 3, subtask 2) release in the real layout.

``Subtask_2_train.json`` holds 10 conversations of 3 utterances (IDs 1–10) with clips in
``train/dia{C}utt{U}.mp4``; ``Subtask_2_test.json`` holds 3 more (IDs 11–13) with clips in
``test/``. Emotions cycle through the 7 classes, so every class occurs in at least 4 different
training conversations and survives any 2-conversation hold-out. Clips are 0.4 s mp4s whose tone
pitch follows the emotion. Entries carry ``video_source`` and ``emotion-cause_pairs`` as the real
files do.

Run: ``python -m tests.data.ecf.data OUT_DIR`` from the repository root.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.data.media import write_mp4

EMOTIONS = ["surprise", "fear", "sadness", "neutral", "joy", "anger", "disgust"]
SPEAKERS = ["Chandler", "Monica", "Ross", "Rachel", "Joey", "Phoebe", "Ross and Rachel"]
UTTERANCES_PER_CONVERSATION = 3


def emotion_freq(emotion: str) -> float:
    return 240.0 + 70.0 * EMOTIONS.index(emotion)


def conversation(cid: int, first_utterance: int) -> dict:
    """One conversation in the subtask 2 JSON format; emotions cycle with the global index."""
    utts, pairs = [], []
    for u in range(1, UTTERANCES_PER_CONVERSATION + 1):
        k = first_utterance + u - 1
        emotion = EMOTIONS[k % len(EMOTIONS)]
        utts.append(
            {
                "utterance_ID": u,
                "text": f"Utterance {u} of conversation {cid} , feeling {emotion} .",
                "speaker": SPEAKERS[(cid + u) % len(SPEAKERS)],
                "emotion": emotion,
                "video_source": ["S01E01", f"00:{cid:02d}:{u:02d}.000", f"00:{cid:02d}:{u:02d}.400"],
                "video_name": f"dia{cid}utt{u}.mp4",
            }
        )
        if emotion != "neutral":
            pairs.append([f"{u}_{emotion}", str(max(1, u - 1))])
    return {"conversation_ID": cid, "conversation": utts, "emotion-cause_pairs": pairs}


def write_part(root: Path, json_name: str, video_dir: str, ids: range, first_utterance: int) -> None:
    convs = [conversation(cid, first_utterance + i * UTTERANCES_PER_CONVERSATION) for i, cid in enumerate(ids)]
    (root / json_name).write_text(json.dumps(convs, indent=4), encoding="utf-8")
    for conv in convs:
        for utt in conv["conversation"]:
            write_mp4(root / video_dir / utt["video_name"], 0.4, freq=emotion_freq(utt["emotion"]), channels=2)


def generate(root: Path, seed: int = 0, *, train_conversations: int = 10, test_conversations: int = 3) -> Path:
    """Write the fake release under ``root`` and return it (``seed`` offsets the emotion cycle)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_part(root, "Subtask_2_train.json", "train", range(1, train_conversations + 1), seed)
    test_ids = range(train_conversations + 1, train_conversations + test_conversations + 1)
    write_part(root, "Subtask_2_test.json", "test", test_ids, seed + train_conversations * UTTERANCES_PER_CONVERSATION)
    return root


if __name__ == "__main__":
    print(generate(Path(sys.argv[1])))
