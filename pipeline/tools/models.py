"""Fetching pretrained models into ``models/pretrained/<backbone>/`` (the only code that downloads).

Backbones never download: their ``source`` is a local directory. This command is the explicit,
one-off step that fills that directory on a machine with internet; afterwards the directory is
tracked with DVC (``dvc add`` + ``dvc push``) so every other machine gets it with ``dvc pull``::

    python -m pipeline.tools.models fetch wav2vec2 [--params params.yaml] [--revision <tag|branch|commit>]

It reads ``backbones.<name>`` and takes the hub id from ``hub`` (preferred: it stays valid after
``source`` is pointed at the local copy) or else ``source``. Which hub — one rule:

1. an explicit prefix wins: ``hf:org/name`` (or ``huggingface:``) → Hugging Face,
   ``modelscope:org/name`` (or ``ms:``) → ModelScope;
2. no prefix: the ModelScope-only organisations ``iic/`` and ``damo/`` (FunASR models: emotion2vec,
   Paraformer, SenseVoice) → ModelScope;
3. anything else → Hugging Face.

A checkpoint published as a plain file (``eva_vit_g.pth`` on LAVIS's storage, for ``eva_clip``) is
fetched with ``hub: url:https://…/<file>``: one HTTP(S) download into ``<dest>/<file>`` (the
URL's last path segment). Its revision is the file's ``sha256:<hex>``; ``hub_revision: sha256:<hex>``
pins it (a download with another digest is an error and leaves nothing behind).

Hugging Face downloads go through ``huggingface_hub.snapshot_download(repo_id, revision=<commit>,
local_dir=...)`` after resolving the requested revision (``hub_revision`` in params or
``--revision``; default the main branch) to its commit, so the files match the recorded commit;
TensorFlow/Flax/ONNX/... duplicates of the weights are skipped (``hub_ignore`` overrides the list,
``hub_allow`` restricts to patterns). ModelScope downloads need ``pip install modelscope``; its
revision is recorded as requested (default ``master``; set ``hub_revision`` to a tag to pin it).

The download is atomic: it goes into a temporary sibling of the target
(``models/pretrained/.<name>.tmp-<pid>@<origin>~<random>``, :func:`pipeline.core.io.atomic_dir`) that
is renamed into place only once it is complete, so a failed or interrupted fetch leaves no
``models/pretrained/<name>/`` that loaders would take for a model (an existing one is kept); the
temporary is removed on failure, and a killed fetch's is removed by the next one. The price: a
failed download starts again from nothing.

``FETCHED.json`` is written last, inside the temporary: hub, repo id, requested and resolved
revision, file count, bytes and a sha256 of the content. It holds no timestamp, so fetching the
same revision twice gives identical files for DVC.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path
from typing import Any

from pydantic import ConfigDict

from pipeline.core.cli import report_error
from pipeline.core.config import load_params, section
from pipeline.core.errors import AffectBenchError
from pipeline.core.io import atomic_dir, write_json
from pipeline.core.paths import MODELS
from pipeline.features.backbones.base import FetchSettings, backbone_settings

PRETRAINED = MODELS / "pretrained"
FETCHED = "FETCHED.json"
MODELSCOPE_ORGS = ("iic", "damo")
PREFIXES = {"hf": "huggingface", "huggingface": "huggingface", "modelscope": "modelscope", "ms": "modelscope",
            "url": "url"}
HUB_NAMES = {"huggingface": "Hugging Face", "modelscope": "ModelScope", "url": "URL"}
URL = re.compile(r"^https?://[^/\s]+/\S*[^/\s]$")
# Framework duplicates of the same weights that transformers/PyTorch never read.
DEFAULT_HF_IGNORE = [
    "*.msgpack", "*.h5", "tf_model*", "flax_model*", "rust_model*", "*.ot", "*.onnx", "*.onnx_data",
    "onnx/*", "openvino/*", "coreml/*", "*.tflite", "*.mlmodel",
]
REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


class ModelFetchError(AffectBenchError):
    """A model that cannot be fetched; the message says why and what to do."""


class FetchTarget(FetchSettings):
    """What fetching reads of a ``backbones.<name>`` section (which its own schema validates first)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    type: str | None = None
    source: str | None = None

    @classmethod
    def of(cls, cfg: Any) -> FetchTarget:
        return cfg if isinstance(cfg, cls) else cls.model_validate(cfg if isinstance(cfg, dict) else cfg.dump())


def parse_hub_id(name: str, spec: str) -> tuple[str, str]:
    """``(hub, repo_id)`` for a ``hub``/``source`` value, by the rule in the module docstring."""
    hub = None
    if ":" in spec:
        prefix, rest = spec.split(":", 1)
        if prefix == "package":
            raise ModelFetchError(
                f"backbones.{name}: source {spec!r} is shipped inside a Python package; nothing to fetch"
            )
        if prefix not in PREFIXES:
            raise ModelFetchError(
                f"backbones.{name}: unknown hub prefix {prefix!r} in {spec!r}; use hf: or modelscope:"
            )
        hub, spec = PREFIXES[prefix], rest
        if hub == "url":
            if not URL.match(spec):
                raise ModelFetchError(f"backbones.{name}: {spec!r} is not an http(s) URL of a file (url:https://.../<file>)")
            return hub, spec
    if not REPO_ID.match(spec) or spec.startswith((".", "/")) or Path(spec).is_dir():
        raise ModelFetchError(
            f"backbones.{name}: {spec!r} is not a hub id (org/name); if source is already a local directory, "
            f"add `hub: <org/name>` (Hugging Face) or `hub: modelscope:<org/name>` to backbones.{name}"
        )
    if hub is None:
        hub = "modelscope" if spec.split("/", 1)[0] in MODELSCOPE_ORGS else "huggingface"
    return hub, spec


def hub_spec(name: str, cfg: FetchTarget) -> str:
    spec = cfg.hub or cfg.source
    if not spec:
        raise ModelFetchError(
            f"backbones.{name} (type {cfg.type}) names no model to fetch: set `hub: <org/name>` "
            f"(its weights ship in a Python package if it needs none)"
        )
    return str(spec)


def content_digest(model_dir: Path) -> tuple[int, int, str]:
    """(files, bytes, sha256) of everything under ``model_dir`` except download caches and FETCHED.json."""
    digest = hashlib.sha256()
    n_files = n_bytes = 0
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(model_dir).as_posix()
        if rel == FETCHED or rel.startswith(".cache/"):
            continue
        digest.update(rel.encode() + b"\0")
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
                n_bytes += len(block)
        n_files += 1
    return n_files, n_bytes, "sha256:" + digest.hexdigest()


def _hf_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


def _fetch_huggingface(name: str, repo_id: str, revision: str | None, dest: Path, cfg: FetchTarget) -> str:
    """Download ``repo_id`` into ``dest``; return the commit it came from."""
    import huggingface_hub
    from huggingface_hub import errors

    try:
        # Resolve a branch/tag to its commit first and download that commit: the files and the
        # recorded revision cannot disagree even if the branch moves during the download.
        commit = revision if revision and re.fullmatch(r"[0-9a-f]{40}", revision) else None
        if commit is None:
            commit = huggingface_hub.HfApi().model_info(repo_id, revision=revision).sha
        huggingface_hub.snapshot_download(
            repo_id,
            revision=commit,
            local_dir=dest,
            allow_patterns=cfg.hub_allow,
            ignore_patterns=DEFAULT_HF_IGNORE if cfg.hub_ignore is None else cfg.hub_ignore,
        )
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError) as err:
        raise ModelFetchError(
            f"backbones.{name}: {repo_id}@{revision or 'main'} not found on Hugging Face "
            f"(check hub / hub_revision): {_first_line(err)}"
        ) from err
    except errors.GatedRepoError as err:
        raise ModelFetchError(
            f"backbones.{name}: {repo_id} is gated: accept its licence on https://huggingface.co/{repo_id} "
            f"and log in (`hf auth login`), then rerun"
        ) from err
    except Exception as err:  # noqa: BLE001 - everything else means "no usable connection"
        raise ModelFetchError(_offline_message(name, repo_id, "Hugging Face", err, _hf_offline())) from err
    return commit


def _fetch_modelscope(name: str, repo_id: str, revision: str | None, dest: Path, cfg: FetchTarget) -> str:
    try:
        from modelscope import snapshot_download
    except ImportError as err:
        raise ModelFetchError(
            f"backbones.{name}: {repo_id} is hosted on ModelScope and the modelscope package is not "
            f"installed: pip install modelscope (only needed for fetching), then rerun "
            f"(or use a Hugging Face mirror with hub: hf:<org/name>)"
        ) from err
    revision = revision or "master"
    try:
        snapshot_download(
            repo_id,
            revision=revision,
            local_dir=str(dest),
            allow_patterns=cfg.hub_allow,
            ignore_patterns=cfg.hub_ignore,
        )
    except Exception as err:  # noqa: BLE001 - modelscope raises plain requests/OS errors
        raise ModelFetchError(_offline_message(name, repo_id, "ModelScope", err, False)) from err
    return revision


def _fetch_url(name: str, url: str, revision: str | None, dest: Path, cfg: FetchTarget) -> str:
    """Download one file into ``dest``; return its ``sha256:<hex>`` (checked against ``revision`` if given)."""
    import urllib.parse
    import urllib.request

    if revision and not re.fullmatch(r"sha256:[0-9a-f]{64}", revision):
        raise ModelFetchError(f"backbones.{name}: hub_revision {revision!r} for a URL must be sha256:<64 hex digits>")
    target = dest / Path(urllib.parse.urlparse(url).path).name
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, target.open("wb") as out:  # http(s) only (parse_hub_id)
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
    except OSError as err:
        raise ModelFetchError(_offline_message(name, url, "the URL's host", err, False)) from err
    got = "sha256:" + digest.hexdigest()
    if revision and got != revision:
        raise ModelFetchError(f"backbones.{name}: {url} downloaded with {got}, not the pinned hub_revision {revision}")
    return got


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def _offline_message(name: str, repo_id: str, hub: str, err: BaseException, offline_mode: bool) -> str:
    if offline_mode:
        why = (
            "HF_HUB_OFFLINE=1 is set (the pipeline's no-download guard, exported by the Makefile); "
            f"fetching is the one step allowed to download: HF_HUB_OFFLINE=0 python -m pipeline.tools.models fetch {name}"
        )
    else:
        why = f"this machine cannot reach {hub} ({_first_line(err)})"
    return (
        f"backbones.{name}: cannot download {repo_id}: {why}. On a machine with internet run "
        f"`python -m pipeline.tools.models fetch {name}`, then `dvc add models/pretrained/{name}` and `dvc push`; "
        f"here, `dvc pull models/pretrained/{name}`."
    )


def fetch(
    name: str,
    cfg: Any,
    *,
    revision: str | None = None,
    dest: str | Path | None = None,
) -> dict[str, Any]:
    """Download backbone ``name``'s model into ``dest`` (default models/pretrained/<name>) and record it."""
    cfg = FetchTarget.of(cfg)
    hub, repo_id = parse_hub_id(name, hub_spec(name, cfg))
    requested = revision or cfg.hub_revision
    dest = Path(dest) if dest else PRETRAINED / name
    downloader = {"huggingface": _fetch_huggingface, "modelscope": _fetch_modelscope, "url": _fetch_url}[hub]
    # Into a temporary sibling, renamed over dest only when complete: a failure (no network, a
    # missing revision, Ctrl-C) leaves dest as it was — never an empty or partial model directory.
    with atomic_dir(dest) as tmp:
        resolved = downloader(name, repo_id, requested, tmp, cfg)
        n_files, n_bytes, digest = content_digest(tmp)
        if n_files == 0:
            raise ModelFetchError(
                f"backbones.{name}: {HUB_NAMES[hub]} returned no files for {repo_id} (check hub_allow)"
            )
        record = {
            "backbone": name,
            "hub": hub,
            "repo_id": repo_id,
            "requested_revision": requested,
            "revision": resolved,
            "files": n_files,
            "bytes": n_bytes,
            "content_sha256": digest,
        }
        write_json(tmp / FETCHED, record)  # last: its presence marks a complete download
    return {**record, "dest": str(dest)}


def next_steps(name: str, info: dict[str, Any], cfg: Any) -> str:
    """What to run after a fetch: track the directory with DVC and point the params at it."""
    dest = info["dest"]
    hub_value = {"modelscope": "modelscope:", "url": "url:"}.get(info["hub"], "") + info["repo_id"]
    lines = [
        f"fetched {info['repo_id']}@{info['revision']} from {HUB_NAMES[info['hub']]} into {dest} "
        f"({info['files']} files, {info['bytes'] / 1e6:.1f} MB)",
        "next:",
        f"  dvc add {dest}            # track the weights with DVC (git add the {dest}.dvc it writes)",
        "  dvc push                                # share them through the DVC remote",
    ]
    cfg = FetchTarget.of(cfg)
    if cfg.source != dest or cfg.hub != hub_value:
        lines += [f"  in params.yaml, backbones.{name}:", f"    source: {dest}", f"    hub: {hub_value}"]
        if info["hub"] in ("huggingface", "url"):  # a commit / file digest pins it; ModelScope's are branch/tag names
            lines.append(f"    hub_revision: {info['revision']}")
    elif info["hub"] == "url" and cfg.hub_revision != info["revision"]:  # a URL's file can change under it
        lines += [f"  pin it in params.yaml, backbones.{name}:", f"    hub_revision: {info['revision']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tools.models", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="download backbones.<name>'s model into models/pretrained/<name>")
    f.add_argument("backbone")
    f.add_argument("--params", default="params.yaml")
    f.add_argument("--revision", help="branch, tag or commit (overrides backbones.<name>.hub_revision)")
    f.add_argument("--dest", help="target directory (default: models/pretrained/<backbone>)")
    args = parser.parse_args(argv)
    try:
        cfg = section(load_params(args.params), "backbones", args.backbone, path=args.params)
        # the section's own schema first: a typo (`hub_alow`) is an error, not a silent full download
        cfg = FetchTarget.of(backbone_settings(args.backbone, cfg))
        info = fetch(args.backbone, cfg, revision=args.revision, dest=args.dest)
    except AffectBenchError as err:
        return report_error(err, "models")
    print(next_steps(args.backbone, info, cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
