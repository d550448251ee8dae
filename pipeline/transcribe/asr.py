"""Automatic transcripts for corpora whose manifest lacks (some) text, so text backbones apply.

Backends (``transcripts.backend``, :class:`TranscriptsSettings`):

- ``whisper``: transformers ``WhisperForConditionalGeneration`` + ``WhisperProcessor`` loaded from
  ``source`` — a local directory or a hub id already in the local Hugging Face cache (e.g.
  ``openai/whisper-large-v3``, Apache-2.0), never downloaded. Options: ``language`` (None =
  detect), ``task`` (transcribe | translate), ``num_beams`` (1), ``max_new_tokens`` (440 per 30 s
  window).
- ``funasr``: a funasr ASR model (Paraformer, SenseVoice, ...) from a local model directory
  (``config.yaml`` + ``model.pt``); hub names fail at once with a clear message (funasr itself would
  try modelscope.cn). Options: ``language`` (SenseVoice: auto|zh|en|yue|ja|ko), ``use_itn``.
  Inline tags such as SenseVoice's ``<|en|><|NEUTRAL|>`` are stripped. The checkpoint is loaded
  checked (:func:`pipeline.core.funasr.load_funasr`): missing, unexpected or mis-shaped tensors are
  an error listing them all; ``strict: false`` warns instead and records the lists in the report's
  ``load_report``.

Common options: ``device`` (auto|cpu|cuda), ``precision`` (whisper on CUDA), ``batch_size``,
``window_seconds`` (30): longer audio is transcribed window by window and the texts are joined
with a space, so nothing is truncated (Whisper itself only sees 30 s).

Library entry points: :func:`transcribe` (audio arrays → strings) and
:func:`fill_missing_transcripts` (fills only the empty ``text`` cells of a corpus and reports).
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
from pydantic import Field

from pipeline.core.audio import SAMPLE_RATE, fixed_windows, seconds_to_samples
from pipeline.core.errors import AffectBenchError
from pipeline.core.funasr import load_funasr, local_funasr_dir
from pipeline.core.runtime import Device, Precision, resolve_device, resolve_revision, resolve_source, torch_dtype
from pipeline.core.settings import Settings, parse

BACKENDS = ("whisper", "funasr")
_TAG = re.compile(r"<\|[^|]*\|>")


class TranscribeError(AffectBenchError):
    """A transcription backend that cannot be built or run; the message says which and why."""


class TranscriptsSettings(Settings):
    """The ``transcripts`` section: fill missing transcripts (text backbones on corpora without text)."""

    backend: Literal["none", "whisper", "funasr"] = "none"  # none: the corpus's own text passes through
    source: str | None = None  # whisper: transformers dir; funasr: Paraformer / SenseVoice dir
    language: str | None = None  # None: detect (whisper) / the model's default (funasr)
    task: Literal["transcribe", "translate"] = "transcribe"  # whisper
    num_beams: int = Field(1, ge=1)  # whisper
    max_new_tokens: int = Field(440, ge=1)  # whisper, per 30 s window
    use_itn: bool | None = None  # funasr (SenseVoice): inverse text normalisation
    strict: bool = True  # funasr: missing/unexpected/mis-shaped checkpoint tensors are errors (false: warn)
    batch_size: int = Field(8, ge=1)
    window_seconds: float = Field(30, gt=0)  # longer audio is transcribed window by window
    min_seconds: float = Field(0.1, ge=0)
    device: Device = "auto"
    precision: Precision = "auto"


class Transcriber:
    """Base: windowing and batching; subclasses implement :meth:`_run` on ≤ window-long pieces."""

    backend = ""

    def __init__(self, cfg: Any):
        self.cfg = cfg = parse(TranscriptsSettings, cfg, "transcripts")
        self.label = "transcripts"
        self.batch_size = cfg.batch_size
        self.window = seconds_to_samples(cfg.window_seconds)
        self.min_samples = seconds_to_samples(cfg.min_seconds)
        self.device = resolve_device(cfg.device)
        self.n_windowed = 0

    def _run(self, pieces: list[np.ndarray]) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, audios: Sequence[np.ndarray]) -> list[str]:
        windows = [fixed_windows(a, self.window, self.min_samples)[0] for a in audios]
        self.n_windowed += sum(len(w) > 1 for w in windows)
        flat = [piece for w in windows for piece in w]
        texts: list[str] = []
        for i in range(0, len(flat), self.batch_size):
            texts += [" ".join(t.split()) for t in self._run(flat[i : i + self.batch_size])]
        out, i = [], 0
        for w in windows:
            out.append(" ".join(t for t in texts[i : i + len(w)] if t))
            i += len(w)
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "source": self.cfg.source,
            "revision": resolve_revision(self.model_dir),
            "language": self.cfg.language,
            "n_windowed": self.n_windowed,
        }


class WhisperTranscriber(Transcriber):
    backend = "whisper"

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        cfg = self.cfg
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        self._torch = torch
        if self.window > 30 * SAMPLE_RATE:
            raise TranscribeError(f"{self.label}: window_seconds must be ≤ 30 for whisper (its input is 30 s)")
        self.model_dir = resolve_source(self.label, cfg.source or "", where="transcripts")
        self.dtype = torch_dtype(self.device, cfg.precision)
        self.processor = WhisperProcessor.from_pretrained(self.model_dir)
        self.model = WhisperForConditionalGeneration.from_pretrained(self.model_dir, dtype=self.dtype)
        self.model.to(self.device).eval()
        self.generate_kwargs = {
            "language": cfg.language,
            "task": cfg.task,
            "num_beams": cfg.num_beams,
            "max_new_tokens": cfg.max_new_tokens,
        }

    def _run(self, pieces: list[np.ndarray]) -> list[str]:
        torch = self._torch
        # Every piece is ≤ 30 s, padded to Whisper's fixed 30 s input: short-form generation. (Passing
        # the feature attention mask would switch transformers to its sequential long-form mode.)
        feats = self.processor(pieces, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        with torch.inference_mode():
            ids = self.model.generate(feats.to(self.device, self.dtype), **self.generate_kwargs)
        return self.processor.batch_decode(ids, skip_special_tokens=True)


class FunasrTranscriber(Transcriber):
    backend = "funasr"

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        self.model_dir = local_funasr_dir(
            self.label, self.cfg.source or "", what="funasr ASR model", error=TranscribeError
        )
        self.automodel, report = load_funasr(
            self.model_dir, self.device, name=self.label, strict=self.cfg.strict, error=TranscribeError
        )
        self.load_report = report.as_dict()
        options = {"language": self.cfg.language, "use_itn": self.cfg.use_itn}
        self.generate_kwargs = {k: v for k, v in options.items() if v is not None}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "load_report": self.load_report}

    def _run(self, pieces: list[np.ndarray]) -> list[str]:
        results = self.automodel.generate(pieces, **self.generate_kwargs)
        return [_TAG.sub("", str(r.get("text", ""))) for r in results]


def build_transcriber(cfg: Any) -> Transcriber:
    cfg = parse(TranscriptsSettings, cfg, "transcripts")
    if cfg.backend == "whisper":
        return WhisperTranscriber(cfg)
    if cfg.backend == "funasr":
        return FunasrTranscriber(cfg)
    raise TranscribeError(f"transcripts: backend must be one of {BACKENDS} to transcribe, got {cfg.backend!r}")


def transcribe(audios: Sequence[np.ndarray], cfg: TranscriptsSettings | dict[str, Any]) -> list[str]:
    """Transcribe 16 kHz mono float32 arrays with the backend in ``cfg``; one string per input."""
    return build_transcriber(cfg)(audios)


def fill_missing_transcripts(corpus, segments, cfg: TranscriptsSettings | dict[str, Any]):
    """Fill the empty ``text`` cells of ``corpus`` by transcribing their segmented audio.

    Rows that already have text are never touched, and when no row is missing nothing is loaded.
    Rows without segmented audio (skipped as bad media) stay empty and are listed. Returns
    ``(new_corpus, report)``; the report is also stored in ``new_corpus.info["transcripts"]``.
    """
    from tqdm import tqdm

    cfg = parse(TranscriptsSettings, cfg, "transcripts")
    df = corpus.manifest.copy()
    text = df["text"].where(df["text"].notna(), "").astype(str)
    missing = text.str.strip().eq("")
    missing_ids = df.loc[missing, "id"].tolist()
    have_audio = [uid for uid in missing_ids if uid in segments.index]
    no_audio = [uid for uid in missing_ids if uid not in segments.index]
    report: dict[str, Any] = {
        "backend": cfg.backend,
        "source": cfg.source,
        "n_rows": len(df),
        "n_missing": len(missing_ids),
        "n_filled": 0,
        "n_empty_result": 0,
        "n_no_audio": len(no_audio),
        "no_audio_ids": no_audio[:20],
    }
    if have_audio:
        start = time.perf_counter()
        transcriber = build_transcriber(cfg)
        filled: dict[str, str] = {}
        with tqdm(total=len(have_audio), desc=f"transcribe {corpus.name}", unit="utt") as bar:
            for i in range(0, len(have_audio), transcriber.batch_size):
                ids = have_audio[i : i + transcriber.batch_size]
                filled.update(zip(ids, transcriber([segments.audio(uid) for uid in ids])))
                bar.update(len(ids))
        text.loc[missing] = df.loc[missing, "id"].map(filled).fillna("")
        report.update(transcriber.describe())
        report["n_filled"] = sum(bool(t.strip()) for t in filled.values())
        report["n_empty_result"] = len(filled) - report["n_filled"]
        report["seconds"] = round(time.perf_counter() - start, 1)
    df["text"] = text
    info = {**corpus.info, "transcripts": report}
    return dataclasses.replace(corpus, manifest=df, info=info), report


def transcripts_table(corpus, segments_path, cfg: TranscriptsSettings) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The transcribe stage's output: ``(id, text, source)`` per utterance and the report.

    ``source`` is ``corpus`` (the corpus's own text), ``asr`` (filled here) or ``none`` (still empty).
    With ``backend: none`` the corpus's text passes through, no model is loaded and the segments
    store is not opened.
    """
    original = corpus.manifest["text"].fillna("").astype(str)
    if cfg.backend == "none":
        report = {"backend": "none", "n_rows": len(original), "n_missing": int((original.str.strip() == "").sum()),
                  "n_filled": 0}
        texts = original
    else:
        from pipeline.core.segments import Segments

        filled, report = fill_missing_transcripts(corpus, Segments(segments_path), cfg)
        texts = filled.manifest["text"].fillna("").astype(str)
    table = pd.DataFrame(
        {"id": corpus.manifest["id"], "text": texts, "source": ["corpus" if t.strip() else "asr" for t in original]}
    )
    table.loc[texts.str.strip() == "", "source"] = "none"
    return table, report
