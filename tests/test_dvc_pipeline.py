"""The real `dvc repro` on a tiny demo config inside a temporary git repository.

Checks the caching contract: second repro is a no-op; a head param reruns only probe + report; a
backbone param reruns only that backbone's embed and what depends on it; `dvc metrics show` lists
the headline files; `dvc metrics diff` between two commits works in a fresh clone with no DVC cache;
push to the local remote and pull into a fresh clone restores everything with a clean status.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.dvc_util import commit, make_repo, ran, set_params, sh

pytestmark = pytest.mark.dvc

TINY = {
    "run": {"corpora": ["demo"], "backbones": ["egemaps", "minilm", "fer"], "heads": ["logreg"]},
    "corpora": {"demo": {"speakers": 4, "utterances_per_class": 2, "dev_speakers": 1, "test_speakers": 1, "fps": 5, "frame_size": 64}},
    "segment": {"fps": 1, "frame_size": 64},
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    base = tmp_path_factory.mktemp("dvc")
    return make_repo(base / "repo", base / "remote", **TINY)


def test_repro_caches_reruns_and_shares(repo, tmp_path):
    out = sh(repo, "dvc", "repro")
    assert {"prepare@demo", "segment@demo", "embed@demo-egemaps", "embed@demo-fer", "report"} <= ran(out)
    rows = json.loads((repo / "metrics/leaderboard.json").read_text())
    assert {r["backbone"] for r in rows} == {"egemaps", "minilm", "fer"}
    assert all(r["n"] == 8 for r in rows)  # 1 speaker × 4 emotions × 2 per split
    commit(repo, "first run")

    assert "Data and pipelines are up to date" in sh(repo, "dvc", "repro")

    set_params(repo, heads={"logreg": {"C_grid": [0.5, 5.0]}})
    # validate reruns on every params edit: it checks the whole file first, and its output never changes
    assert ran(sh(repo, "dvc", "repro")) == {f"probe@demo-{b}-logreg" for b in ("egemaps", "minilm", "fer")} | {"validate", "report"}

    set_params(repo, backbones={"fer": {"pooling": "mean"}})
    rerun = ran(sh(repo, "dvc", "repro"))
    # report reruns only if the probe's outputs changed (on this tiny split they may not)
    assert {"embed@demo-fer", "probe@demo-fer-logreg"} <= rerun <= {"validate", "embed@demo-fer", "probe@demo-fer-logreg", "report"}
    commit(repo, "new head grid, fer mean pooling")

    # the DVC metrics are the small headline files (in git), not the detailed experiment JSONs
    shown = sh(repo, "dvc", "metrics", "show")
    assert "metrics/headline/demo/egemaps/logreg.json" in shown and "emotion.test.uar" in shown, shown
    assert "metrics/experiments" not in shown and "per_class_recall" not in shown and "confusion" not in shown
    headline = json.loads((repo / "metrics/headline/demo/fer/logreg.json").read_text())
    assert set(headline) == {"emotion"} and set(headline["emotion"]) == {"dev", "test"}
    assert set(headline["emotion"]["test"]) == {"uar", "war", "macro_f1", "n"}  # no ccc on a classification task
    assert "metrics/headline/demo/fer/logreg.json" in sh(repo, "git", "ls-files", "metrics/headline")
    assert (repo / "metrics/report.html").stat().st_size > 10_000

    sh(repo, "dvc", "push")
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    # before any pull: a clone with no DVC cache diffs the metrics of two revisions from git alone
    assert not (clone / ".dvc/cache").exists()
    diff = sh(clone, "dvc", "metrics", "diff", "HEAD~1", "--all", "--md")
    assert "failed" not in diff.lower() and "metrics/headline/demo/fer/logreg.json" in diff, diff
    changed = {line.split("|")[2].strip() for line in sh(clone, "dvc", "metrics", "diff", "HEAD~1", "--md").splitlines()
               if line.startswith("| metrics/headline/")}
    assert changed, "the new C grid and fer's mean pooling changed no headline metric"
    sh(clone, "dvc", "remote", "modify", "--local", "local", "url", str(repo.parent / "remote"))
    sh(clone, "dvc", "pull")
    assert (clone / "features/demo/minilm.zarr/zarr.json").exists()
    assert json.loads((clone / "metrics/leaderboard.json").read_text()) == json.loads((repo / "metrics/leaderboard.json").read_text())
    status = sh(clone, "dvc", "status")
    assert "Data and pipelines are up to date" in status, status


def computed(output: str, backbone: str) -> int:
    """How many items ``embed demo/<backbone>`` computed in a `dvc repro` log (not served from the cache)."""
    return int(re.search(rf"embed demo/{backbone}: \d+ distinct inputs, \d+ cached, (\d+) to compute", output).group(1))


def test_code_in_a_stages_import_closure_is_a_dependency(repo):
    """Editing faces.py (run only by the video backbones) reruns the embed stages and recomputes fer alone."""
    sh(repo, "dvc", "repro")  # up to date after the test above
    faces = repo / "pipeline/features/faces.py"
    original = faces.read_text()
    try:
        faces.write_text(original + "\n# a comment only: the code is unchanged\n")
        assert "embed@demo-fer" in sh(repo, "dvc", "status")
        out = sh(repo, "dvc", "repro")
        assert "embed@demo-fer" in ran(out) and computed(out, "fer") == 0  # same code: served from the cache
        assert not any(s.startswith("probe@") for s in ran(out))  # so the store is unchanged downstream

        faces.write_text(original + "\nHAAR_MIN_NEIGHBORS = 4  # restated: a code change, same behaviour\n")
        assert "embed@demo-fer" in sh(repo, "dvc", "status")
        out = sh(repo, "dvc", "repro")
        assert computed(out, "fer") == 32 and computed(out, "egemaps") == 0  # fer runs faces.py; egemaps does not
        assert "probe@demo-fer-logreg" in ran(out)  # its store's code_version changed
    finally:
        faces.write_text(original)
