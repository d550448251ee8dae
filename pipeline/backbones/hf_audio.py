"""Generic transformers audio encoders, driven by the checkpoint's ``config.json`` (``model_type``).

Weights come from ``source``: a local directory (``save_pretrained`` layout) or a hub id already in
the local Hugging Face cache — this code never downloads. Licences are those of the checkpoint
(e.g. facebook/wav2vec2-*, facebook/hubert-*, facebook/data2vec-audio-*, openai/whisper-*,
Qwen/Qwen2-Audio-7B*: Apache-2.0; microsoft/wavlm-*, TencentGameMate/chinese-hubert-*: MIT;
MIT/ast-*: BSD-3-Clause — read the model card of the checkpoint you use). Dims/layers follow the
config: e.g. base models 768-d × 13 states, large 1024-d × 25, whisper-large-v3 1280-d × 33,
the Qwen2-Audio tower 1280-d × 33, AST base 768-d × 13.

Families (chosen from ``model_type``):

* **SSL** — wav2vec2, hubert (incl. TencentGameMate/chinese-hubert-large: layer-norm conv stack
  without bias, stable layer norm, feature-projection layer norm), wavlm, data2vec-audio (tested);
  wav2vec2-conformer, unispeech, unispeech-sat take the same path untested. ``AutoModel`` +
  ``Wav2Vec2FeatureExtractor`` (without a ``preprocessor_config.json``: normalised inputs for
  layer-norm conv stacks, raw for group-norm ones, as transformers' checkpoints do). Frame rate
  16000 / prod(``conv_stride``) (50/s for the standard stack). Inputs shorter than the conv stack's
  receptive field (400 samples for the standard stack) are zero-padded.
* **Whisper** — the encoder only (``WhisperEncoder``; decoder tensors are never read). The feature
  extractor always pads to ``chunk_length`` (30 s), so the encoder frames are trimmed to the real
  input length before pooling: otherwise short clips would be pooled mostly over padding. Frame rate
  sampling_rate / (hop_length × conv stride), the stride being (chunk frames / max_source_positions)
  = 2, i.e. 50/s.
* **Qwen2-Audio** — the audio tower only (``Qwen2AudioEncoder``, ~0.6 B parameters). From a full
  Qwen2-Audio checkpoint only the ``audio_tower.*`` tensors are read (the 7B language model is
  never loaded); a directory holding just the encoder (``model_type: qwen2_audio_encoder``) also
  works. The tower ends with a 2× average pool, so its last hidden state runs at 25 frames/s while
  the earlier ones run at 50/s; the earlier ones are average-pooled the same way so that all
  L = encoder_layers + 1 states share the 25/s time axis. Trimmed to the real length like Whisper.
* **AST** (``audio-spectrogram-transformer``) — ``ASTModel`` + ``ASTFeatureExtractor``; params
  ``mean``/``std`` override the extractor's normalisation (users compute them on their own data).
  AST has no time axis of its own: its tokens are overlapping 2-D (frequency × time) patches plus
  two summary tokens. Decision: ``frames`` are the patch tokens averaged over the frequency rows of
  each time column — a [T, D] sequence at 100 / ``time_stride`` per second (10/s by default),
  trimmed to the columns that overlap real audio (the extractor pads every input to
  ``max_length`` = 10.24 s). ``pooled`` pools those columns per layer (``ast_pooling: tokens``,
  default) or takes the model's own summary, the mean of the CLS and distillation tokens, per layer
  (``ast_pooling: cls``).

Every family: ``pooled`` is [L, D] (L = num_hidden_layers + 1, every hidden state pooled over time
with ``pooling``: mean | mean+std | max); ``frames`` are the frames of ``frame_layer`` (default
last). Inputs longer than ``window_seconds`` (default 30; capped at the model's fixed input length
for Whisper/Qwen2-Audio/AST) are cut into near-equal windows whose frames are concatenated — nothing
is silently truncated.

Batching: the inputs the driver passes to :meth:`embed` are cut into windows and grouped into
forward passes of at most ``batch_seconds`` (default 120) of *padded* audio, longest first. SSL
models get a padded batch with an attention mask only where padding provably does not change the
real frames (checked by the tests); elsewhere they run one window at a time (see
:func:`_ssl_padding_problem`). Whisper, Qwen2-Audio and AST pad every window to a fixed length
anyway, so their batches are exact.

Params example::

    backbones:
      wavlm_large: {type: hf_audio, source: microsoft/wavlm-large, frame_layer: -1, batch_seconds: 120}
      whisper_small: {type: hf_audio, source: models/pretrained/whisper_small}
      qwen2_audio_tower: {type: hf_audio, source: Qwen/Qwen2-Audio-7B-Instruct, precision: bf16}
      ast: {type: hf_audio, source: MIT/ast-finetuned-audioset-10-10-0.4593, mean: -4.27, std: 4.57}
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from pipeline.backbones import register_backbone
from pipeline.backbones.base import (
    Backbone,
    BackboneError,
    Embedding,
    pool,
    resolve_revision,
)

SAMPLE_RATE = 16000

SSL_TYPES = ("wav2vec2", "wav2vec2-conformer", "hubert", "wavlm", "data2vec-audio", "unispeech", "unispeech-sat")
WHISPER_TYPES = ("whisper",)
QWEN2_AUDIO_TYPES = ("qwen2_audio", "qwen2_audio_encoder")
AST_TYPES = ("audio-spectrogram-transformer",)
SUPPORTED_TYPES = SSL_TYPES + WHISPER_TYPES + QWEN2_AUDIO_TYPES + AST_TYPES

# SSL model types whose padded, attention-masked batches were checked (tests/test_backbones_hf_audio.py)
# to give the same real frames as unpadded single inputs, given a layer-norm conv feature encoder.
_PADDED_BATCH_SAFE = ("wav2vec2", "hubert", "wavlm")


# ---------------------------------------------------------------------------------------------
# Helpers shared with clap.py: windowing long inputs and grouping windows into batches.
# ---------------------------------------------------------------------------------------------


def split_windows(audio: np.ndarray, window: int, align: int = 1) -> list[np.ndarray]:
    """Cut ``audio`` into ceil(len / window) near-equal consecutive windows (each <= ``window``).

    Near-equal rather than fixed-size windows so that the last one is never a sliver too short for
    the model; window starts are multiples of ``align`` samples (the model's frame hop) so that the
    concatenated frames stay on one time grid.
    """
    n = max(1, math.ceil(len(audio) / window))
    if n == 1:
        return [audio]
    size = math.ceil(len(audio) / n / align) * align
    if size > window:  # rounding up to the hop overshot the window: fall back to plain sizes
        size = math.ceil(len(audio) / n)
    return [audio[i * size : (i + 1) * size] for i in range(math.ceil(len(audio) / size))]


def group_by_seconds(
    lengths: Sequence[int], budget_samples: int, fixed_samples: int | None = None
) -> list[list[int]]:
    """Indices grouped into batches whose padded size (n × longest, or n × ``fixed_samples`` for
    models that pad every input to a fixed length) stays within ``budget_samples``; longest first so
    that batches hold inputs of similar length. An input larger than the budget gets a batch of its
    own; a budget of 0 puts every input on its own."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        # the first (longest) member of a group sets its padded length
        if groups and (len(groups[-1]) + 1) * (fixed_samples or lengths[groups[-1][0]]) <= budget_samples:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


# ---------------------------------------------------------------------------------------------
# Loading only part of a checkpoint (Whisper encoder, Qwen2-Audio audio tower).
# ---------------------------------------------------------------------------------------------


def _weight_index(model_dir: Path) -> dict[str, Path]:
    """Map every tensor name in a checkpoint directory to the file that holds it."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = model_dir / index_name
        if index.exists():
            weight_map = json.loads(index.read_text())["weight_map"]
            return {k: model_dir / f for k, f in weight_map.items()}
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (model_dir / name).exists():
            return {k: model_dir / name for k in _keys_in(model_dir / name)}
    return {}


def _keys_in(path: Path) -> list[str]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            return list(fh.keys())
    import torch

    return list(torch.load(path, map_location="cpu", weights_only=True, mmap=True))


def read_prefixed_tensors(model_dir: Path, prefix: str, keys: dict[str, Path]) -> dict[str, Any]:
    """Read only the tensors whose name starts with ``prefix`` (prefix stripped), shard by shard."""
    import torch

    wanted: dict[Path, list[str]] = {}
    for key, file in keys.items():
        if key.startswith(prefix):
            wanted.setdefault(file, []).append(key)
    tensors = {}
    for file, names in wanted.items():
        if file.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(file), framework="pt") as fh:
                for name in names:
                    tensors[name[len(prefix) :]] = fh.get_tensor(name)
        else:
            state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
            tensors.update({name[len(prefix) :]: state[name] for name in names})
    return tensors


def load_submodule(name: str, model_cls: type, config: Any, model_dir: Path, prefixes: Sequence[str], dtype):
    """Build ``model_cls(config)`` from the tensors under the first of ``prefixes`` present in the
    checkpoint, without materialising the rest of it (built on the meta device, then the read
    tensors are assigned). Missing or unexpected tensors are an error, not a warning."""
    import torch

    keys = _weight_index(model_dir)
    if not keys:
        raise BackboneError(f"backbones.{name}: no model.safetensors / pytorch_model.bin in {model_dir}")
    prefix = next((p for p in prefixes if any(k.startswith(p) for k in keys)), None)
    if prefix is None:
        raise BackboneError(
            f"backbones.{name}: {model_dir} holds no tensors under {list(prefixes)} "
            f"(first keys: {sorted(keys)[:5]})"
        )
    state = read_prefixed_tensors(model_dir, prefix, keys)
    with torch.device("meta"):
        model = model_cls(config)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise BackboneError(
            f"backbones.{name}: the {prefix!r} tensors of {model_dir} do not fit {model_cls.__name__}: "
            f"missing {missing[:20]}, unexpected {unexpected[:20]}"
        )
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    left_on_meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left_on_meta:  # a non-persistent buffer the checkpoint cannot provide
        raise BackboneError(f"backbones.{name}: {model_cls.__name__} tensors not restored: {left_on_meta}")
    return model, prefix, len(state), len(keys)


def _ssl_padding_problem(config: Any) -> str | None:
    """Why padded batches would change an SSL model's real frames (None when they do not)."""
    if getattr(config, "feat_extract_norm", "layer") == "group":
        # GroupNorm in the first conv layer normalises each channel over the whole (padded) time
        # axis, so padding shifts the statistics of every frame: transformers' own docs say not to
        # batch-pad these models (wav2vec2-base, hubert-base, wavlm-base).
        return "feat_extract_norm='group' normalises over the padded length"
    if config.model_type == "data2vec-audio":
        # Its positional embedding is a stack of convolutions; padded positions are zeroed only
        # before the first one, so the last frames of shorter inputs see non-zero padding
        # (measured: differences of order 1 in the last ~8 frames of a tiny model).
        return "data2vec-audio's stacked positional convolutions see the padding"
    if config.model_type not in _PADDED_BATCH_SAFE:
        return f"padded batches not verified for {config.model_type}"
    return None


@register_backbone("hf_audio")
class HFAudioBackbone(Backbone):
    modality = "audio"
    has_frames = True

    def __init__(self, name: str, cfg: dict[str, Any]):
        super().__init__(name, cfg)
        import torch
        from transformers import AutoConfig

        self._torch = torch
        self.load_runtime()
        self.frame_layer = int(cfg.get("frame_layer", -1))
        self.batch_samples = int(float(cfg.get("batch_seconds", 120)) * SAMPLE_RATE)
        self.ast_pooling = cfg.get("ast_pooling", "tokens")
        if self.ast_pooling not in ("tokens", "cls"):
            raise BackboneError(f"backbones.{name}: ast_pooling must be 'tokens' or 'cls', got {self.ast_pooling!r}")
        try:
            self.config = AutoConfig.from_pretrained(self.model_dir)
        except Exception as err:  # noqa: BLE001 - unknown/garbled config: say which backbone and dir
            raise BackboneError(f"backbones.{name}: cannot read config.json in {self.model_dir}: {err}") from err
        model_type = self.config.model_type
        if model_type not in SUPPORTED_TYPES:
            raise BackboneError(
                f"backbones.{name}: model_type {model_type!r} is not supported by hf_audio "
                f"(supported: {', '.join(SUPPORTED_TYPES)})"
            )
        self.n_padded = 0
        self.n_windowed = 0
        self.load_info: dict[str, Any] = {}
        if model_type in SSL_TYPES:
            self._init_ssl()
        elif model_type in WHISPER_TYPES:
            self._init_whisper()
        elif model_type in QWEN2_AUDIO_TYPES:
            self._init_qwen2_audio()
        else:
            self._init_ast()
        if self.extractor.sampling_rate != SAMPLE_RATE:
            raise BackboneError(
                f"backbones.{name}: the feature extractor expects {self.extractor.sampling_rate} Hz; inputs are 16 kHz"
            )
        self.model.to(self.device).eval()
        self.window = min(int(float(cfg.get("window_seconds", 30)) * SAMPLE_RATE), self.max_window)
        self.min_samples = max(int(float(cfg.get("min_seconds", 0.1)) * SAMPLE_RATE), self.model_min_samples)

    # -- family set-up: each sets extractor, model, forward fn, frame geometry ------------------

    def _extractor(self, default: Callable[[], Any] | None = None):
        from transformers import AutoFeatureExtractor

        if (self.model_dir / "preprocessor_config.json").exists() or default is None:
            try:
                return AutoFeatureExtractor.from_pretrained(self.model_dir)
            except Exception as err:  # noqa: BLE001
                raise BackboneError(
                    f"backbones.{self.name}: no usable preprocessor_config.json in {self.model_dir} ({err}); "
                    "copy it from the checkpoint the model came from"
                ) from err
        self.load_info["feature_extractor"] = "default (no preprocessor_config.json)"
        return default()

    def _init_ssl(self) -> None:
        from transformers import AutoModel, Wav2Vec2FeatureExtractor

        config = self.config
        # Without a preprocessor config, follow transformers' convention: checkpoints with a
        # layer-norm conv stack were trained on zero-mean unit-variance inputs, group-norm ones not.
        self.extractor = self._extractor(
            lambda: Wav2Vec2FeatureExtractor(
                feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0,
                do_normalize=getattr(config, "feat_extract_norm", "layer") == "layer",
                return_attention_mask=getattr(config, "feat_extract_norm", "layer") == "layer",
            )
        )
        self.model = AutoModel.from_pretrained(self.model_dir, dtype=self.dtype)
        hop = int(np.prod(config.conv_stride))
        self.samples_per_frame = hop
        # receptive field of the conv stack: the shortest input that yields one frame
        field, jump = 1, 1
        for kernel, stride in zip(config.conv_kernel, config.conv_stride):
            field += (kernel - 1) * jump
            jump *= stride
        self.model_min_samples = field
        self.max_window = math.inf  # no fixed input length
        self.fixed_samples = None
        self.padding_problem = _ssl_padding_problem(config)
        self.n_layers = config.num_hidden_layers + 1
        self.hidden_size = config.hidden_size
        self._run = self._run_ssl
        self.family = "ssl"

    def _whisper_geometry(self, max_source_positions: int) -> None:
        ex = self.extractor
        self.conv_stride = ex.nb_max_frames // max_source_positions  # 3000 mel frames → 1500 positions
        self.samples_per_frame = ex.hop_length * self.conv_stride
        self.max_window = ex.n_samples  # the extractor pads/truncates to chunk_length seconds
        self.fixed_samples = ex.n_samples
        self.model_min_samples = 1
        self.padding_problem = None

    def _init_whisper(self) -> None:
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        self.extractor = self._extractor()
        self.model, prefix, n_read, n_total = load_submodule(
            self.name, WhisperEncoder, self.config, self.model_dir, ("model.encoder.", "encoder."), self.dtype
        )
        self.load_info.update(loaded=f"WhisperEncoder from {prefix}* ({n_read} of {n_total} tensors)")
        self._whisper_geometry(self.config.max_source_positions)
        self.n_layers = self.config.encoder_layers + 1
        self.hidden_size = self.config.d_model
        self._run = self._run_whisper
        self.family = "whisper"

    def _init_qwen2_audio(self) -> None:
        from transformers import Qwen2AudioEncoder

        self.extractor = self._extractor()
        if self.config.model_type == "qwen2_audio":
            enc_config = self.config.audio_config
            self.model, prefix, n_read, n_total = load_submodule(
                self.name, Qwen2AudioEncoder, enc_config, self.model_dir,
                ("audio_tower.", "model.audio_tower."), self.dtype,
            )
            self.load_info.update(loaded=f"Qwen2AudioEncoder from {prefix}* ({n_read} of {n_total} tensors)")
        else:
            enc_config = self.config
            self.model = Qwen2AudioEncoder.from_pretrained(self.model_dir, dtype=self.dtype)
            self.load_info.update(loaded="Qwen2AudioEncoder (encoder-only checkpoint)")
        self._whisper_geometry(enc_config.max_source_positions)
        self.pool_stride = int(self.model.avg_pooler.stride[0])  # the tower's final 2× average pool
        self.samples_per_frame *= self.pool_stride
        self.n_layers = enc_config.encoder_layers + 1
        self.hidden_size = enc_config.d_model
        self._run = self._run_qwen2_audio
        self.family = "qwen2_audio"

    def _init_ast(self) -> None:
        from transformers import AutoModel

        self.extractor = self._extractor()
        for key in ("mean", "std"):
            if key in self.cfg:
                setattr(self.extractor, key, float(self.cfg[key]))
        self.model = AutoModel.from_pretrained(self.model_dir, dtype=self.dtype)
        config = self.config
        if self.extractor.max_length != config.max_length:  # the position embeddings fix the length
            raise BackboneError(
                f"backbones.{self.name}: extractor max_length {self.extractor.max_length} != model max_length "
                f"{config.max_length}"
            )
        self.freq_patches, self.time_patches = self.model.embeddings.get_shape(config)
        # ASTFeatureExtractor: Kaldi fbank, 25 ms windows every 10 ms, padded/truncated to max_length
        hop, win = SAMPLE_RATE // 100, SAMPLE_RATE * 25 // 1000
        self.fbank_hop, self.fbank_win = hop, win
        self.samples_per_frame = hop * config.time_stride
        self.max_window = (config.max_length - 1) * hop + win
        self.fixed_samples = self.max_window
        self.model_min_samples = win
        self.padding_problem = None
        self.n_layers = config.num_hidden_layers + 1
        self.hidden_size = config.hidden_size
        self._run = self._run_ast
        self.family = "ast"

    # -- forward passes: per window, (hidden states [L, T_real, D], summary [L, D] or None) -------

    def _features(self, windows: list[np.ndarray], **kwargs) -> dict[str, Any]:
        inputs = self.extractor(windows, sampling_rate=SAMPLE_RATE, return_tensors="pt", **kwargs)
        out = {}
        for key, value in inputs.items():
            if self.device.startswith("cuda"):  # page-locked host memory: asynchronous copies
                value = value.pin_memory().to(self.device, non_blocking=True)
            else:
                value = value.to(self.device)
            out[key] = value.to(self.dtype) if value.is_floating_point() else value
        return out

    def _hidden(self, **inputs) -> Any:
        with self._torch.inference_mode():
            out = self.model(**inputs, output_hidden_states=True)
        return self._torch.stack(out.hidden_states, dim=1).float()  # [B, L, T, D]

    def _real_frames(self, n_samples: int, available: int) -> int:
        return min(available, max(1, math.ceil(n_samples / self.samples_per_frame)))

    def _run_ssl(self, windows: list[np.ndarray]) -> list[tuple[np.ndarray, None]]:
        torch = self._torch
        if len(windows) > 1:
            inputs = self._features(windows, padding=True, return_attention_mask=True)
        else:  # a single window is never padded: no mask (group-norm models must not get one)
            inputs = self._features(windows)
            inputs.pop("attention_mask", None)
        states = self._hidden(**inputs)
        lengths = self.model._get_feat_extract_output_lengths(torch.tensor([len(w) for w in windows]))
        return [(s[:, : int(n)].cpu().numpy(), None) for s, n in zip(states, lengths)]

    def _run_whisper(self, windows: list[np.ndarray]) -> list[tuple[np.ndarray, None]]:
        states = self._hidden(input_features=self._features(windows)["input_features"])
        return [(s[:, : self._real_frames(len(w), s.shape[1])].cpu().numpy(), None) for s, w in zip(states, windows)]

    def _run_qwen2_audio(self, windows: list[np.ndarray]) -> list[tuple[np.ndarray, None]]:
        torch = self._torch
        inputs = self._features(windows)
        with torch.inference_mode():
            hidden = self.model(input_features=inputs["input_features"], output_hidden_states=True).hidden_states
        # hidden[:-1] are the 50/s layer inputs; hidden[-1] is the tower output after its 2x average
        # pool: pool the others the same way so that all share one time axis.
        k = self.pool_stride
        pooled = [torch.nn.functional.avg_pool1d(h.transpose(1, 2), k, k).transpose(1, 2) for h in hidden[:-1]]
        states = torch.stack([*pooled, hidden[-1]], dim=1).float()
        return [(s[:, : self._real_frames(len(w), s.shape[1])].cpu().numpy(), None) for s, w in zip(states, windows)]

    def _run_ast(self, windows: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        states = self._hidden(input_values=self._features(windows)["input_values"])  # [B, L, 2 + F*T, D]
        b, layers, _, dim = states.shape
        # patch tokens are ordered frequency-major: average the frequency rows of each time column
        columns = states[:, :, 2:].reshape(b, layers, self.freq_patches, self.time_patches, dim).mean(dim=2)
        summary = (states[:, :, 0] + states[:, :, 1]) / 2  # the model's own pooler (CLS + distillation)
        out = []
        for i, w in enumerate(windows):
            fbank_frames = 1 + (len(w) - self.fbank_win) // self.fbank_hop
            n = min(self.time_patches, max(1, math.ceil(fbank_frames / self.config.time_stride)))
            cls = summary[i].cpu().numpy() if self.ast_pooling == "cls" else None
            out.append((columns[i, :, :n].cpu().numpy(), cls))
        return out

    # -- driver --------------------------------------------------------------------------------

    def embed(self, batch: Sequence[np.ndarray]) -> list[Embedding]:
        windows: list[np.ndarray] = []
        owner: list[int] = []
        for idx, audio in enumerate(batch):
            audio = np.asarray(audio, dtype=np.float32)
            if len(audio) < self.min_samples:
                audio = np.pad(audio, (0, self.min_samples - len(audio)))
                self.n_padded += 1
            parts = split_windows(audio, self.window, align=self.samples_per_frame)
            self.n_windowed += len(parts) > 1
            windows += parts
            owner += [idx] * len(parts)

        budget = 0 if self.padding_problem else self.batch_samples  # 0: every window on its own
        results: list[Any] = [None] * len(windows)
        for group in group_by_seconds([len(w) for w in windows], budget, self.fixed_samples):
            for i, result in zip(group, self._run([windows[i] for i in group])):
                results[i] = result

        out = []
        for idx in range(len(batch)):
            mine = [i for i, o in enumerate(owner) if o == idx]
            frames = np.concatenate([results[i][0] for i in mine], axis=1)  # [L, T, D]
            if results[mine[0]][1] is not None:  # AST summary tokens: length-weighted mean over windows
                weights = [len(windows[i]) for i in mine]
                pooled = np.average(np.stack([results[i][1] for i in mine]), axis=0, weights=weights)
            else:
                pooled = pool(frames, self.pooling)
            out.append(Embedding(np.asarray(pooled, np.float32), frames[self.frame_layer].astype(np.float32)))
        return out

    def frame_rate(self) -> float:
        return SAMPLE_RATE / self.samples_per_frame

    def describe(self) -> dict[str, Any]:
        info = {
            "source": self.cfg.get("source"),
            "revision": resolve_revision(self.model_dir),
            "frame_rate": self.frame_rate(),
            "model_type": self.config.model_type,
            "n_layers": self.n_layers,
            "hidden_size": self.hidden_size,
            "family": self.family,
            "pooling": "cls+distillation" if self.family == "ast" and self.ast_pooling == "cls" else self.pooling,
            "frame_layer": self.frame_layer,
            "window_seconds": self.window / SAMPLE_RATE,
            "batching": f"per item: {self.padding_problem}" if self.padding_problem else "padded batches",
            "dtype": str(self.dtype).replace("torch.", ""),
            "n_padded": self.n_padded,
            "n_windowed": self.n_windowed,
            **self.load_info,
        }
        if self.family == "ast":
            info.update(normalisation={"mean": float(self.extractor.mean), "std": float(self.extractor.std)},
                        frames="patch tokens averaged over frequency, one per time column")
        return info
