"""emotion2vec / emotion2vec+ speech-emotion encoders, run through funasr's ``AutoModel``.

What: data2vec-2.0-style self-supervised speech encoders tuned for emotion (Ma et al., 2023,
arXiv:2312.15185). ``emotion2vec_base`` is the pre-trained encoder; ``emotion2vec_plus_seed``,
``_plus_base`` and ``_plus_large`` add a 9-class emotion head (angry, disgusted, fearful, happy,
neutral, other, sad, surprised, unknown). Weights: ModelScope ``iic/emotion2vec_*`` or Hugging Face
``emotion2vec/emotion2vec_*``; licence: the FunASR "model-license" named on the model cards (read
it before redistributing weights); funasr code MIT.
Dims: 768 for base/plus_seed/plus_base, 1024 for plus_large; layers L = ``model_conf.depth`` + 1
(read from ``config.yaml``). Frame rate 50 Hz (conv stride 320 at 16 kHz; read from the config).

``source`` must be a local funasr model directory (``config.yaml`` + ``model.pt``, plus ``tokens.txt``
for the emotion2vec+ classifiers), or a hub id already in the local Hugging Face cache. Given a hub
name, funasr itself would try modelscope.cn for ~22 s and then fail with a misleading "not
registered" error, so this module never hands funasr anything but an existing directory and raises
its own message instead.

Outputs: the utterance goes through funasr's own inference path (``granularity="frame"``); forward
hooks on the transformer blocks collect every hidden state, so ``pooled`` is [L, D] (state after
the prenet, then after each block; the last one is funasr's frame output, whose time-mean is
funasr's utterance embedding) pooled with ``pooling`` (mean | mean+std | max) and ``frames`` is
[T, D] of ``frame_layer`` (default last). Inputs longer than ``window_seconds`` (30) are processed
in consecutive windows whose frames are concatenated; shorter than ``min_seconds`` (0.1) padded.

``scores: true`` (emotion2vec+ only) makes ``pooled`` the 9 class posteriors instead (no frames;
label names in ``describe()["labels"]``), which :func:`zero_shot_predict` maps onto a corpus's
classes without any training. Options: ``device`` (auto|cpu|cuda), ``precision`` (CUDA autocast
bf16/fp16; fp32 on CPU).

Loading is checked (:func:`pipeline.core.funasr.load_funasr`): a checkpoint tensor the model does
not take, a model tensor the checkpoint lacks, or one of another shape is an error listing them all
(``strict: false`` warns instead and records the lists in ``describe()["load_report"]``). The only
tensors allowed to be absent are those of :data:`IGNORED` (the pre-training decoder, which is
removed after loading). A classifier head (``proj``) that did not load — missing, mis-shaped (its
size comes from ``tokens.txt``) — is an error for ``scores: true`` and :meth:`class_scores` even
with ``strict: false``: a random head never produces scores.
"""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

import numpy as np
from pydantic import Field

from pipeline.core.audio import SAMPLE_RATE, fixed_windows, seconds_to_samples
from pipeline.core.errors import BackboneError
from pipeline.core.funasr import load_funasr, local_funasr_dir
from pipeline.core.runtime import resolve_device, resolve_revision, torch_dtype
from pipeline.features.backbones.base import Backbone, Embedding, ModelSettings, Pooling, pool, register_backbone

# Tensors an emotion2vec checkpoint may lack or carry unused, and why that is harmless.
IGNORED: list[tuple[str, str]] = [
    (
        r"modality_encoders\.AUDIO\.decoder\..+",
        (
            "data2vec 2.0 pre-training decoder: built from config.yaml but not shipped in emotion2vec+ "
            "checkpoints; never run at inference, removed after loading (remove_pretraining_modules)"
        ),
    ),
]
HEAD = "proj."  # the emotion2vec+ classifier head: Linear(embed_dim, len(tokens.txt))

E2V_LABELS = ["angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised", "unknown"]

# Corpus class names (lower-cased) that mean the same as an emotion2vec+ label; used by zero_shot_predict.
SYNONYMS = {
    "angry": {"angry", "anger", "ang"},
    "disgusted": {"disgusted", "disgust", "dis"},
    "fearful": {"fearful", "fear", "fea", "scared"},
    "happy": {"happy", "happiness", "hap", "joy", "joyful"},
    "neutral": {"neutral", "neu"},
    "sad": {"sad", "sadness"},
    "surprised": {"surprised", "surprise", "sur"},
}


def label_name(token: str) -> str:
    """emotion2vec+ tokens look like ``生气/angry``; ``<unk>`` is the 'unknown' class."""
    token = token.strip()
    if token == "<unk>":
        return "unknown"
    return token.rsplit("/", 1)[-1]


def zero_shot_predict(
    scores: np.ndarray,
    classes: Sequence[str],
    labels: Sequence[str] = tuple(E2V_LABELS),
    mapping: dict[str, str | Sequence[str]] | None = None,
) -> tuple[list[str], np.ndarray]:
    """Predict a corpus's classes from emotion2vec+ posteriors, without training.

    ``scores`` [N, len(labels)] are the 9-class posteriors (``scores: true`` store rows or
    :meth:`Emotion2vecBackbone.class_scores`). ``mapping`` sends each corpus class to one or more
    emotion2vec+ labels; by default classes are matched by common names (anger/angry/ang, happiness/
    happy/hap/joy, ...). A class's score is the sum of its labels' posteriors; classes with no
    counterpart (e.g. EmoDB's boredom) score 0. Returns (predicted class per row, class scores [N, C]).
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float32))
    labels = [label_name(lab) for lab in labels]
    if scores.shape[1] != len(labels):
        raise BackboneError(f"zero_shot_predict: scores have {scores.shape[1]} columns but {len(labels)} labels")
    if mapping is None:
        mapping = {c: [lab for lab, names in SYNONYMS.items() if c.lower() in names] for c in classes}
    class_scores = np.zeros((len(scores), len(classes)), np.float32)
    for j, cls in enumerate(classes):
        targets = mapping.get(cls, [])
        for lab in [targets] if isinstance(targets, str) else targets:
            if lab not in labels:
                raise BackboneError(f"zero_shot_predict: {cls!r} maps to {lab!r}, not one of {labels}")
            class_scores[:, j] += scores[:, labels.index(lab)]
    if not any(mapping.get(c) for c in classes):
        raise BackboneError(
            f"zero_shot_predict: none of {list(classes)} matches an emotion2vec+ label {labels}; pass mapping="
        )
    return [classes[i] for i in class_scores.argmax(1)], class_scores


class Emotion2vecSettings(ModelSettings):
    pooling: Pooling = "mean"
    frame_layer: int = -1  # which hidden state becomes the frame features
    window_seconds: float = Field(30, gt=0)  # longer inputs: consecutive windows, frames concatenated
    min_seconds: float = Field(0.1, ge=0)  # shorter inputs are zero-padded
    scores: bool = False  # emotion2vec+ only: pooled = the 9 class posteriors (zero-shot baseline)
    strict: bool = True  # checkpoint: missing/unexpected/mis-shaped tensors are errors (false: warn, record)


@register_backbone(
    "emotion2vec",
    description="emotion2vec(+) through funasr: every layer pooled, 50 Hz frames, or the 9-class scores",
    settings=Emotion2vecSettings, licence="FunASR model licence",
    weights="`pipeline.tools.models fetch` (ModelScope)",
    verified="funasr `AutoModel.generate(extract_embedding=True)`, utterance and frame granularity: cos ≥ 0.9999, "
             "equal frame counts, equal scores and label order",
    verified_by="tests/test_parity_emotion2vec.py::test_frames_and_pooled_equal_funasr",
)
class Emotion2vecBackbone(Backbone):
    modality = "audio"
    has_frames = True

    def __init__(self, name: str, settings: Emotion2vecSettings):
        super().__init__(name, settings)
        # Resolve and check the directory before importing funasr (slow, and it would try the hub).
        self.model_dir = local_funasr_dir(f"backbones.{name}", settings.source, what="emotion2vec model")
        import torch

        self._torch = torch
        self.device = resolve_device(settings.device)
        self.dtype = torch_dtype(self.device, settings.precision)
        self.pooling = settings.pooling
        self.frame_layer = settings.frame_layer
        self.window = seconds_to_samples(settings.window_seconds)
        self.min_samples = seconds_to_samples(settings.min_seconds)
        self.automodel, report = load_funasr(
            self.model_dir, self.device, name=f"backbones.{name}", strict=settings.strict, ignore=IGNORED
        )
        self.load_report = report.as_dict()
        self.model = self.automodel.model
        if type(self.model).__name__ != "Emotion2vec":
            raise BackboneError(
                f"backbones.{name}: {self.model_dir} holds a funasr {type(self.model).__name__}, "
                f"not an emotion2vec model"
            )
        self.encoder = self.model.modality_encoders["AUDIO"]
        self.encoder.remove_pretraining_modules()  # the decoder (IGNORED): never run, so never random output
        tokenizer = self.automodel.kwargs.get("tokenizer")
        tokens = list(getattr(tokenizer, "token_list", None) or [])
        self.labels = [label_name(t) for t in tokens if not t.startswith("unuse")]
        self.scores = settings.scores
        # A head that did not load (missing / mis-shaped with strict: false) must never produce scores.
        self.head_error = None
        if self.model.proj is not None and report.not_loaded(HEAD):
            details = [m for m in report.shape_mismatch if m.startswith(HEAD)]
            details += [f"{k}: missing" for k in report.missing if k.startswith(HEAD)]
            self.head_error = (
                f"backbones.{name}: the emotion classifier head of {self.model_dir} did not load ({details}; "
                f"its size is the number of lines of tokens.txt): a random head never produces scores"
            )
        if self.scores and self.head_error:
            raise BackboneError(self.head_error)
        if self.scores and (self.model.proj is None or not self.labels):
            raise BackboneError(
                f"backbones.{name}: scores: true needs an emotion2vec+ classifier (model with a head and "
                f"tokens.txt); {self.model_dir} is a plain encoder"
            )
        self.has_frames = not self.scores
        self._captured: list[Any] = []
        self._hooks = [self.model.blocks[0].register_forward_pre_hook(self._capture_input)]
        self._hooks += [blk.register_forward_hook(self._capture_output) for blk in self.model.blocks]
        self.n_padded = 0
        self.n_windowed = 0

    # Hooks: the tensor entering the first block, then each block's output x (blocks return (x, t)).
    def _capture_input(self, _module, args):
        self._captured.append(args[0].detach())

    def _capture_output(self, _module, _args, output):
        self._captured.append(output[0].detach())

    @property
    def num_layers(self) -> int:
        return len(self.model.blocks) + 1

    def frame_rate(self) -> float:
        return SAMPLE_RATE / float(np.prod([layer[2] for layer in self.encoder.feature_enc_layers]))

    def _autocast(self):
        torch = self._torch
        if self.device.startswith("cuda") and self.dtype != torch.float32:
            return torch.autocast("cuda", dtype=self.dtype)
        return contextlib.nullcontext()

    def _forward(self, audio: np.ndarray) -> tuple[np.ndarray, list[float]]:
        """Hidden states [L, T, D] and class posteriors (empty without a head) for one window."""
        self._captured.clear()
        with self._torch.inference_mode(), self._autocast():
            (res,) = self.automodel.generate(audio, granularity="frame", extract_embedding=True)
        n_extra = int(self.encoder.modality_cfg.num_extra_tokens)
        states = [h[0, n_extra:].float().cpu().numpy() for h in self._captured]
        final = np.asarray(res["feats"], dtype=np.float32)
        if len(states) != self.num_layers or states[-1].shape != final.shape:
            raise BackboneError(f"backbones.{self.name}: unexpected emotion2vec layer outputs (funasr changed?)")
        states[-1] = final  # funasr's own frame output (includes the final norm where the model has one)
        return np.stack(states), list(res.get("scores", []))

    def _embed_one(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        windows, padded = fixed_windows(audio, self.window, self.min_samples)
        self.n_padded += padded
        self.n_windowed += len(windows) > 1
        outs = [self._forward(w) for w in windows]
        states = np.concatenate([s for s, _ in outs], axis=1)
        scores = np.zeros(0, np.float32)
        if outs[0][1]:  # posteriors of several windows: length-weighted mean
            weights = np.array([len(w) for w in windows], np.float64)
            scores = (np.array([s for _, s in outs]) * weights[:, None]).sum(0) / weights.sum()
        return states, scores.astype(np.float32)

    def embed(self, batch: Sequence[np.ndarray]) -> list[Embedding]:
        results = []
        for audio in batch:
            states, scores = self._embed_one(audio)
            if self.scores:
                results.append(Embedding(scores))
            else:
                results.append(Embedding(pool(states, self.pooling).astype(np.float32), states[self.frame_layer]))
        return results

    def class_scores(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        """emotion2vec+ posteriors [N, len(self.labels)] (for :func:`zero_shot_predict`)."""
        if self.model.proj is None:
            raise BackboneError(f"backbones.{self.name}: {self.model_dir} has no emotion classifier head")
        if self.head_error:
            raise BackboneError(self.head_error)
        return np.stack([self._embed_one(a)[1] for a in batch])

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.settings.source,
            "revision": resolve_revision(self.model_dir),
            "frame_rate": None if self.scores else self.frame_rate(),
            "model_type": "emotion2vec",
            "output": "scores" if self.scores else "hidden_states",
            "labels": self.labels,
            "num_layers": self.num_layers,
            "hidden_size": int(self.model.cfg.get("embed_dim")),
            "frame_layer": self.frame_layer,
            "n_padded": self.n_padded,
            "n_windowed": self.n_windowed,
            "load_report": self.load_report,
        }
