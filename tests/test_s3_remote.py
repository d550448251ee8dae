"""Sharing embeddings through a real S3-protocol DVC remote (a moto server on 127.0.0.1).

Clone A runs the pipeline and pushes to ``s3://<bucket>/store``; clone B, a ``git clone`` of A,
pulls only the feature store it needs and reproduces: no embed stage runs (B's embed cache stays
empty), the probe retrains from the pulled store, and ``dvc status`` ends clean. The endpoint and
the (dummy) credentials live in each clone's ``.dvc/config.local``; only the remote's URL is committed.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

# exc_type=ImportError: also skip when a package is present but cannot be imported (a missing extra)
pytest.importorskip("dvc_s3", reason="dvc-s3 is not importable", exc_type=ImportError)
moto_server = pytest.importorskip("moto.server", reason="moto[server] is not importable", exc_type=ImportError)
boto3 = pytest.importorskip("boto3", reason="boto3 is not importable", exc_type=ImportError)

from tests.dvc_util import commit, make_repo, ran, sh  # noqa: E402

pytestmark = pytest.mark.dvc

# Smaller than test_dvc_pipeline's TINY (3 speakers × 4 emotions × 1, one backbone): the plumbing is the point.
TINY = {
    "run": {"corpora": ["demo"], "backbones": ["egemaps"], "heads": ["logreg"]},
    "corpora": {"demo": {"speakers": 3, "utterances_per_class": 1, "dev_speakers": 1, "test_speakers": 1, "fps": 2, "frame_size": 32}},
    "segment": {"fps": 1, "frame_size": 32},
}
BUCKET = "affectbench-test"
KEY, SECRET = "testing", "testing"  # moto accepts any credentials
STORE = "features/demo/egemaps.zarr"


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on a free local port with one empty bucket; yields (endpoint, boto3 client)."""
    with socket.socket() as s:  # a free port, picked up front so the endpoint is known before start
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY, aws_secret_access_key=SECRET, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    try:
        yield endpoint, client
    finally:
        server.stop()


@pytest.fixture(scope="module", autouse=True)
def own_embed_cache():
    """Each clone uses its own relative `.cache/embed`, never a cache shared through the environment;
    a developer's AWS profile must not leak into the DVC subprocesses either."""
    with pytest.MonkeyPatch.context() as mp:
        for var in ("AFFECTBENCH_EMBED_CACHE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            mp.delenv(var, raising=False)
        yield


def configure_s3(repo: Path, endpoint: str) -> None:
    """Endpoint and credentials in the clone's git-ignored .dvc/config.local, never committed (no region needed)."""
    for option, value in (("endpointurl", endpoint), ("access_key_id", KEY), ("secret_access_key", SECRET)):
        sh(repo, "dvc", "remote", "modify", "--local", "s3", option, value)


def test_push_to_s3_and_pull_only_the_store(s3, tmp_path):
    endpoint, client = s3
    a = make_repo(tmp_path / "a", tmp_path / "local-remote", **TINY)
    sh(a, "dvc", "remote", "add", "s3", f"s3://{BUCKET}/store")
    commit(a, "s3 remote")
    configure_s3(a, endpoint)
    committed = (a / ".dvc/config").read_text()
    assert f"s3://{BUCKET}/store" in committed and SECRET not in committed and endpoint not in committed
    assert "config.local" in (a / ".dvc/.gitignore").read_text()

    out = sh(a, "dvc", "repro")
    assert {"prepare@demo", "segment@demo", "embed@demo-egemaps", "probe@demo-egemaps-logreg", "report"} <= ran(out)
    assert any((a / ".cache/embed").rglob("*"))  # A computed its embeddings into its own cache
    commit(a, "first run")
    sh(a, "dvc", "push", "-r", "s3")
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET) for o in page.get("Contents", [])]
    assert keys and all(k.startswith("store/files/md5/") for k in keys), keys[:5]
    assert any(k.endswith(".dir") for k in keys)  # directory outputs (the zarr stores) are pushed as .dir manifests

    b = tmp_path / "b"
    sh(tmp_path, "git", "clone", "-q", str(a), str(b))
    assert not (b / ".dvc/config.local").exists()  # the credentials did not travel with git
    configure_s3(b, endpoint)
    sh(b, "dvc", "pull", "-r", "s3", STORE)
    assert (b / STORE / "zarr.json").exists()
    assert not (b / "data/demo/prepared").exists()  # only the store was fetched

    out = sh(b, "dvc", "repro")
    stages = ran(out)
    assert not {s for s in stages if s.startswith("embed@")}, out
    assert "probe@demo-egemaps-logreg" in stages or (b / "models/demo/egemaps/logreg").exists(), out
    cache = b / ".cache/embed"
    assert not cache.exists() or not any(cache.rglob("*")), sorted(cache.rglob("*"))[:5]
    status = sh(b, "dvc", "status")
    assert "Data and pipelines are up to date" in status, status
