"""One strategy per transformers audio family: loading, frame geometry and the forward pass.

A family is chosen from the checkpoint's ``model_type`` (:func:`family_for`). Each sets, from its
model and feature extractor:

- ``samples_per_frame`` (the frame hop in samples), ``max_window`` (longest input one forward pass
  takes; ``inf`` for SSL models), ``fixed_samples`` (the length every input is padded to, or None),
  ``model_min_samples`` (the shortest input giving one frame), ``padding_problem`` (why padded
  batches would change real frames, or None), ``n_layers`` (hidden states) and ``hidden_size``;

and implements :meth:`Family.run`: per window, the hidden states of its real frames [L, T, D] and
a model summary [L, D] (AST's CLS + distillation tokens) or None.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from pipeline.core.audio import SAMPLE_RATE
from pipeline.core.errors import BackboneError
from pipeline.features.backbones._loading import load_pretrained
from pipeline.features.backbones.hf_audio.checkpoint import load_submodule

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.features.backbones.hf_audio.backbone import HFAudioBackbone

SSL_TYPES = ("wav2vec2", "wav2vec2-conformer", "hubert", "wavlm", "data2vec-audio", "unispeech", "unispeech-sat")
WHISPER_TYPES = ("whisper",)
QWEN2_AUDIO_TYPES = ("qwen2_audio", "qwen2_audio_encoder")
AST_TYPES = ("audio-spectrogram-transformer",)
SUPPORTED_TYPES = SSL_TYPES + WHISPER_TYPES + QWEN2_AUDIO_TYPES + AST_TYPES

# SSL model types whose padded, attention-masked batches were checked (tests/test_backbones_hf_audio.py)
# to give the same real frames as unpadded single inputs, given a layer-norm conv feature encoder.
_PADDED_BATCH_SAFE = ("wav2vec2", "hubert", "wavlm")


def ssl_padding_problem(config: Any) -> str | None:
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


class Family:
    """Base: shared helpers over the owning backbone (device, dtype, model dir, load report)."""

    name = ""
    padding_problem: str | None = None
    fixed_samples: int | None = None

    def __init__(self, bb: "HFAudioBackbone"):
        import torch

        self.bb = bb
        self.config = bb.config
        self._torch = torch

    # -- helpers -------------------------------------------------------------------------------

    def load_extractor(self, default: Callable[[], Any] | None = None):
        from transformers import AutoFeatureExtractor

        bb = self.bb
        if (bb.model_dir / "preprocessor_config.json").exists() or default is None:
            try:
                return AutoFeatureExtractor.from_pretrained(bb.model_dir)
            except Exception as err:  # noqa: BLE001
                raise BackboneError(
                    f"backbones.{bb.name}: no usable preprocessor_config.json in {bb.model_dir} ({err}); "
                    "copy it from the checkpoint the model came from"
                ) from err
        bb.load_info["feature_extractor"] = "default (no preprocessor_config.json)"
        return default()

    def features(self, windows: list[np.ndarray], **kwargs) -> dict[str, Any]:
        """Feature-extracted windows on the device, floats in the model's dtype."""
        bb = self.bb
        inputs = self.extractor(windows, sampling_rate=SAMPLE_RATE, return_tensors="pt", **kwargs)
        out = {}
        for key, value in inputs.items():
            if bb.device.startswith("cuda"):  # page-locked host memory: asynchronous copies
                value = value.pin_memory().to(bb.device, non_blocking=True)
            else:
                value = value.to(bb.device)
            out[key] = value.to(bb.dtype) if value.is_floating_point() else value
        return out

    def hidden(self, **inputs) -> Any:
        """Every hidden state stacked: [B, L, T, D] float32."""
        with self._torch.inference_mode():
            out = self.model(**inputs, output_hidden_states=True)
        return self._torch.stack(out.hidden_states, dim=1).float()

    def real_frames(self, n_samples: int, available: int) -> int:
        return min(available, max(1, math.ceil(n_samples / self.samples_per_frame)))

    def run(self, windows: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray | None]]:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {}


class SSLFamily(Family):
    """wav2vec2, HuBERT, WavLM, data2vec-audio (+ untested wav2vec2-conformer, UniSpeech(-SAT))."""

    name = "ssl"

    def __init__(self, bb: "HFAudioBackbone"):
        super().__init__(bb)
        from transformers import AutoModel, Wav2Vec2FeatureExtractor

        config = self.config
        # Without a preprocessor config, follow transformers' convention: checkpoints with a
        # layer-norm conv stack were trained on zero-mean unit-variance inputs, group-norm ones not.
        self.extractor = self.load_extractor(
            lambda: Wav2Vec2FeatureExtractor(
                feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0,
                do_normalize=getattr(config, "feat_extract_norm", "layer") == "layer",
                return_attention_mask=getattr(config, "feat_extract_norm", "layer") == "layer",
            )
        )
        # masked_spec_embed is SpecAugment's training-time mask vector: unused at inference
        self.model, report = load_pretrained(bb.name, AutoModel, bb.model_dir, dtype=bb.dtype,
                                             unused_missing=("masked_spec_embed",))
        bb.load_info["load_report"] = report
        self.samples_per_frame = int(np.prod(config.conv_stride))
        # receptive field of the conv stack: the shortest input that yields one frame
        field, jump = 1, 1
        for kernel, stride in zip(config.conv_kernel, config.conv_stride):
            field += (kernel - 1) * jump
            jump *= stride
        self.model_min_samples = field
        self.max_window = math.inf  # no fixed input length
        self.padding_problem = ssl_padding_problem(config)
        self.n_layers = config.num_hidden_layers + 1
        self.hidden_size = config.hidden_size

    def run(self, windows: list[np.ndarray]) -> list[tuple[np.ndarray, None]]:
        torch = self._torch
        if len(windows) > 1:
            inputs = self.features(windows, padding=True, return_attention_mask=True)
        else:  # a single window is never padded: no mask (group-norm models must not get one)
            inputs = self.features(windows)
            inputs.pop("attention_mask", None)
        states = self.hidden(**inputs)
        lengths = self.model._get_feat_extract_output_lengths(torch.tensor([len(w) for w in windows]))
        return [(s[:, : int(n)].cpu().numpy(), None) for s, n in zip(states, lengths)]


class WhisperFamily(Family):
    """The Whisper encoder (decoder tensors are never read); frames trimmed to the real input."""

    name = "whisper"

    def __init__(self, bb: "HFAudioBackbone"):
        super().__init__(bb)
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        self.extractor = self.load_extractor()
        self.model, prefix, n_read, n_total = load_submodule(
            bb.name, WhisperEncoder, self.config, bb.model_dir, ("model.encoder.", "encoder."), bb.dtype
        )
        bb.load_info.update(loaded=f"WhisperEncoder from {prefix}* ({n_read} of {n_total} tensors)")
        self.geometry(self.config.max_source_positions)
        self.n_layers = self.config.encoder_layers + 1
        self.hidden_size = self.config.d_model

    def geometry(self, max_source_positions: int) -> None:
        ex = self.extractor
        self.conv_stride = ex.nb_max_frames // max_source_positions  # 3000 mel frames → 1500 positions
        self.samples_per_frame = ex.hop_length * self.conv_stride
        self.max_window = ex.n_samples  # the extractor pads/truncates to chunk_length seconds
        self.fixed_samples = ex.n_samples
        self.model_min_samples = 1

    def run(self, windows: list[np.ndarray]) -> list[tuple[np.ndarray, None]]:
        states = self.hidden(input_features=self.features(windows)["input_features"])
        return [(s[:, : self.real_frames(len(w), s.shape[1])].cpu().numpy(), None) for s, w in zip(states, windows)]


class Qwen2AudioFamily(WhisperFamily):
    """The Qwen2-Audio audio tower only (the 7B language model is never loaded), 25 frames/s."""

    name = "qwen2_audio"

    def __init__(self, bb: "HFAudioBackbone"):
        Family.__init__(self, bb)
        from transformers import Qwen2AudioEncoder

        self.extractor = self.load_extractor()
        if self.config.model_type == "qwen2_audio":
            enc_config = self.config.audio_config
            self.model, prefix, n_read, n_total = load_submodule(
                bb.name, Qwen2AudioEncoder, enc_config, bb.model_dir,
                ("audio_tower.", "model.audio_tower."), bb.dtype,
            )
            bb.load_info.update(loaded=f"Qwen2AudioEncoder from {prefix}* ({n_read} of {n_total} tensors)")
        else:
            enc_config = self.config
            self.model, report = load_pretrained(bb.name, Qwen2AudioEncoder, bb.model_dir, dtype=bb.dtype)
            bb.load_info.update(loaded="Qwen2AudioEncoder (encoder-only checkpoint)", load_report=report)
        self.geometry(enc_config.max_source_positions)
        self.pool_stride = int(self.model.avg_pooler.stride[0])  # the tower's final 2× average pool
        self.samples_per_frame *= self.pool_stride
        self.n_layers = enc_config.encoder_layers + 1
        self.hidden_size = enc_config.d_model

    def run(self, windows: list[np.ndarray]) -> list[tuple[np.ndarray, None]]:
        """The tower as ``Qwen2AudioForConditionalGeneration`` runs it: the extractor's frame mask
        becomes the encoder's attention mask (real frames never attend to the 30-s padding) and each
        item keeps the tower's own output length (``_get_feat_extract_output_lengths``)."""
        torch = self._torch
        from transformers.masking_utils import create_bidirectional_mask

        inputs = self.features(windows, return_attention_mask=True)
        features = inputs["input_features"]
        conv_lengths, out_lengths = self.model._get_feat_extract_output_lengths(inputs["attention_mask"].sum(-1))
        max_seq = (features.shape[-1] - 2) // 2 + 1
        mask_2d = (torch.arange(max_seq, device=features.device)[None, :] < conv_lengths[:, None]).long()
        mask = create_bidirectional_mask(config=self.model.config, attention_mask=mask_2d,
                                         inputs_embeds=torch.zeros((len(windows), max_seq, 1), dtype=features.dtype,
                                                                   device=features.device))
        with torch.inference_mode():
            hidden = self.model(input_features=features, attention_mask=mask, output_hidden_states=True).hidden_states
        # hidden[:-1] are the 50/s layer inputs; hidden[-1] is the tower output after its 2x average
        # pool: pool the others the same way so that all share one time axis.
        k = self.pool_stride
        pooled = [torch.nn.functional.avg_pool1d(h.transpose(1, 2), k, k).transpose(1, 2) for h in hidden[:-1]]
        states = torch.stack([*pooled, hidden[-1]], dim=1).float()
        return [(s[:, : max(1, int(n))].cpu().numpy(), None) for s, n in zip(states, out_lengths)]


class ASTFamily(Family):
    """The Audio Spectrogram Transformer: frames are patch tokens averaged over frequency rows."""

    name = "ast"

    def __init__(self, bb: "HFAudioBackbone"):
        super().__init__(bb)
        from transformers import AutoModel

        s = bb.settings
        self.extractor = self.load_extractor()
        for key in ("mean", "std"):
            if getattr(s, key) is not None:
                setattr(self.extractor, key, float(getattr(s, key)))
        self.model, report = load_pretrained(bb.name, AutoModel, bb.model_dir, dtype=bb.dtype)
        bb.load_info["load_report"] = report
        config = self.config
        if self.extractor.max_length != config.max_length:  # the position embeddings fix the length
            raise BackboneError(
                f"backbones.{bb.name}: extractor max_length {self.extractor.max_length} != model max_length "
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
        self.n_layers = config.num_hidden_layers + 1
        self.hidden_size = config.hidden_size
        self.summary = s.ast_pooling == "cls"

    def run(self, windows: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        with self._torch.inference_mode():
            out = self.model(input_values=self.features(windows)["input_values"], output_hidden_states=True)
        # transformers' hidden_states[-1] is the last block's output *before* ASTModel's final LayerNorm;
        # the model's output (last_hidden_state, and pooler_output = its CLS + distillation mean) is
        # after it. The last state is the model's output, as in the other families (whose
        # hidden_states[-1] already is): frames and the cls summary are then what ASTModel returns.
        states = self._torch.stack([*out.hidden_states[:-1], out.last_hidden_state], dim=1).float()  # [B, L, 2+F*T, D]
        b, layers, _, dim = states.shape
        # patch tokens are ordered frequency-major: average the frequency rows of each time column
        columns = states[:, :, 2:].reshape(b, layers, self.freq_patches, self.time_patches, dim).mean(dim=2)
        summary = (states[:, :, 0] + states[:, :, 1]) / 2  # the model's own pooler (CLS + distillation)
        out = []
        for i, w in enumerate(windows):
            fbank_frames = 1 + (len(w) - self.fbank_win) // self.fbank_hop
            n = min(self.time_patches, max(1, math.ceil(fbank_frames / self.config.time_stride)))
            cls = summary[i].cpu().numpy() if self.summary else None
            out.append((columns[i, :, :n].cpu().numpy(), cls))
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "normalisation": {"mean": float(self.extractor.mean), "std": float(self.extractor.std)},
            "frames": "patch tokens averaged over frequency, one per time column",
        }


def family_for(model_type: str) -> type[Family]:
    for types, cls in ((SSL_TYPES, SSLFamily), (WHISPER_TYPES, WhisperFamily),
                       (QWEN2_AUDIO_TYPES, Qwen2AudioFamily), (AST_TYPES, ASTFamily)):
        if model_type in types:
            return cls
    raise KeyError(model_type)
