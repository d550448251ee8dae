"""Loading only part of a checkpoint: the Whisper encoder or the Qwen2-Audio audio tower.

The tensors under one name prefix are read shard by shard (the rest of a 7B checkpoint is never
materialised) and assigned into a model built on the meta device; missing or unexpected tensors
are an error listing them, not a warning; so are mis-shaped ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from pipeline.core.errors import BackboneError


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
    tensors are assigned). Missing, unexpected or mis-shaped tensors are an error, not a warning."""
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
    expected_shapes = {k: tuple(t.shape) for k, t in model.state_dict().items()}
    misshaped = sorted(k for k, v in state.items() if tuple(v.shape) != expected_shapes[k])
    if misshaped:
        raise BackboneError(
            f"backbones.{name}: the {prefix!r} tensors of {model_dir} do not fit {model_cls.__name__}: mis-shaped "
            + ", ".join(f"{k} (checkpoint {tuple(state[k].shape)}, model {expected_shapes[k]})" for k in misshaped[:20])
        )
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    left_on_meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left_on_meta:  # a non-persistent buffer the checkpoint cannot provide
        raise BackboneError(f"backbones.{name}: {model_cls.__name__} tensors not restored: {left_on_meta}")
    return model, prefix, len(state), len(keys)
