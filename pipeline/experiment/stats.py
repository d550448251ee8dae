"""Uncertainty of leaderboard metrics: cluster bootstrap intervals, paired tests, McNemar, Holm.

Utterances of one speaker (or session, dialogue, subject: the corpus's independence unit, the
manifest's ``group`` column where it has one, else ``speaker``) are not independent, so every
resampling here draws whole clusters: a *cluster bootstrap* (each resample draws as many clusters
as there are, with replacement, and keeps all their items) and, for paired comparisons, a cluster
permutation test (each cluster's predictions are swapped between the two systems with probability
1/2). Intervals are percentile intervals (default 95 %, 1000 resamples, seed 0); with few clusters
(a 2-speaker test set) they are coarse, and the leaderboard says how many clusters they rest on.

Everything is vectorised: per-cluster sufficient statistics (a confusion matrix, sums of moments,
counts per score level) times a ``[resamples, clusters]`` matrix of draw counts give every
resample's statistics in one matrix product; the metric formulas then act on whole arrays. The
formulas reproduce :func:`pipeline.core.metrics.classification_metrics` (scikit-learn) and
:func:`~pipeline.core.metrics.regression_metrics` exactly on every resample (tested against them on
explicitly resampled data). McNemar's test is the exact binomial test on discordant items (scipy).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import Field
from scipy import sparse
from scipy.stats import binomtest

from pipeline.core.settings import Settings

CHUNK = 250  # resamples per block where a block's arrays grow with the number of items (AUROC)


class UncertaintySettings(Settings):
    """How intervals and paired tests are computed (defaults: 1000 resamples, 95 %, seed 0)."""

    resamples: int = Field(1000, ge=0)  # cluster-bootstrap resamples per interval (0: no intervals)
    permutations: int = Field(10000, ge=0)  # cluster permutations per paired test (0: no permutation test)
    level: float = Field(0.95, gt=0.5, lt=1.0)  # coverage of the intervals
    seed: int = 0  # fixed seed: the same predictions always give the same intervals


DEFAULT = UncertaintySettings()
_active = DEFAULT


def evaluation_settings(params: dict) -> UncertaintySettings:
    """``params.yaml``'s ``evaluation`` section (absent: the defaults); a typo is an error naming the key."""
    from pipeline.core.settings import parse

    return parse(UncertaintySettings, params.get("evaluation") or {}, "evaluation")


def configure(settings: UncertaintySettings) -> None:
    """Make ``settings`` what scoring and the report use when not given settings explicitly: each
    scoring stage calls this once with :func:`evaluation_settings` (and depends on ``evaluation``)."""
    global _active
    _active = settings


def active() -> UncertaintySettings:
    """The settings :func:`configure` set (the defaults until then)."""
    return _active


@dataclass(frozen=True)
class Clusters:
    """Which independence unit (cluster) each item belongs to: sorted unit names and an index per item."""

    names: np.ndarray
    index: np.ndarray

    @classmethod
    def of(cls, units: Sequence) -> Clusters:
        names, index = np.unique(np.asarray(units).astype(str), return_inverse=True)
        return cls(names, index.ravel())

    @property
    def n(self) -> int:
        return len(self.names)

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Per-cluster sums of per-item rows ``values`` [items, S] → [clusters, S]."""
        out = np.zeros((self.n, values.shape[1]))
        np.add.at(out, self.index, values)
        return out


def draw_counts(n_clusters: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, clusters]: how often each cluster is drawn in each bootstrap resample.

    Depends only on the number of clusters, resamples and seed, so every system scored on the same
    clusters (the seeds of one head, two heads compared on one test set) sees the same resamples.
    """
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_clusters, size=(resamples, n_clusters))
    flat = (draws + n_clusters * np.arange(resamples)[:, None]).ravel()
    return np.bincount(flat, minlength=resamples * n_clusters).reshape(resamples, n_clusters).astype(float)


def interval(values: np.ndarray, level: float) -> list[float] | None:
    """Percentile interval of resampled values (resamples where the metric is undefined are left out)."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return [float(lo), float(hi)]


# ---------------------------------------------------------------- classification


def confusion_stats(y_true: Sequence, y_pred: Sequence, classes: Sequence[str], clusters: Clusters) -> np.ndarray:
    """Per-cluster confusion matrices, flattened: [clusters, (K+1)²] (row = true class, column = predicted).

    The extra last class holds predictions outside the task's classes (an Audio-LLM's ``unparsed``
    answers): never a true label, so it only ever makes an item wrong, as in scikit-learn.
    """
    k = len(classes) + 1
    pos = {c: i for i, c in enumerate(classes)}
    t = np.array([pos[v] for v in y_true], dtype=np.int64)
    p = np.array([pos.get(v, k - 1) for v in y_pred], dtype=np.int64)
    flat = clusters.index * k * k + t * k + p
    return np.bincount(flat, minlength=clusters.n * k * k).reshape(clusters.n, k * k).astype(float)


def confusion_scores(conf: np.ndarray, positive: int | None = None) -> dict[str, np.ndarray]:
    """UAR, WAR, macro/weighted F1 (and the positive class's F1/precision/recall) of confusions [B, K, K].

    As scikit-learn on the resampled items: UAR and macro F1 average over the classes present in the
    resample's true labels, weighted F1 weights them by support, undefined ratios count 0
    (``zero_division=0``).
    """
    support = conf.sum(axis=2)
    predicted = conf.sum(axis=1)
    tp = np.diagonal(conf, axis1=1, axis2=2)
    total = support.sum(axis=1)
    present = support > 0
    n_present = present.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(present, tp / np.where(present, support, 1), 0.0)
        f1 = np.where(support + predicted > 0, 2 * tp / np.maximum(support + predicted, 1e-300), 0.0)
        out = {
            "uar": np.where(n_present > 0, recall.sum(axis=1) / n_present, np.nan),
            "war": np.where(total > 0, tp.sum(axis=1) / total, np.nan),
            "macro_f1": np.where(n_present > 0, (f1 * present).sum(axis=1) / n_present, np.nan),
            "weighted_f1": np.where(total > 0, (f1 * support).sum(axis=1) / total, np.nan),
            "per_class_recall": np.where(present, recall, np.nan),  # [B, K]; NaN where a class is absent
        }
        if positive is not None:
            tp_p, pred_p, sup_p = tp[:, positive], predicted[:, positive], support[:, positive]
            out["positive_f1"] = f1[:, positive]
            out["positive_precision"] = np.where(pred_p > 0, tp_p / np.maximum(pred_p, 1e-300), 0.0)
            out["positive_recall"] = np.where(sup_p > 0, tp_p / np.maximum(sup_p, 1e-300), 0.0)
    return out


def auroc_resamples(is_positive: np.ndarray, scores: np.ndarray, clusters: Clusters, counts: np.ndarray) -> np.ndarray:
    """AUROC of every resample (rows of ``counts``): the weighted Mann-Whitney statistic, ties 1/2.

    Equals scikit-learn's ``roc_auc_score`` on the resampled items; NaN where a resample lacks a class.
    """
    levels, level = np.unique(np.asarray(scores, float), return_inverse=True)
    shape = (clusters.n, len(levels))
    pos = sparse.csr_matrix((is_positive.astype(float), (clusters.index, level.ravel())), shape=shape)
    neg = sparse.csr_matrix(((~is_positive).astype(float), (clusters.index, level.ravel())), shape=shape)
    out = np.empty(len(counts))
    for start in range(0, len(counts), CHUNK):
        block = counts[start:start + CHUNK]
        wpos = np.asarray((pos.T @ block.T).T)
        wneg = np.asarray((neg.T @ block.T).T)
        below = np.cumsum(wneg, axis=1) - wneg  # negatives scored strictly lower, per level
        num = (wpos * (below + 0.5 * wneg)).sum(axis=1)
        den = wpos.sum(axis=1) * wneg.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[start:start + CHUNK] = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return out


def classification_resamples(
    y_true: Sequence, y_pred: Sequence, classes: Sequence[str], units: Sequence, counts: np.ndarray | None = None,
    *, positive: str | None = None, scores: np.ndarray | None = None, settings: UncertaintySettings = DEFAULT,
) -> tuple[dict[str, np.ndarray], Clusters]:
    """Every headline classification metric on every cluster-bootstrap resample: {metric: [B]}.

    ``units`` names each item's independence unit; ``counts`` (default: :func:`draw_counts` from
    ``settings``) fixes the resamples. Binary tasks with a ``positive`` class add its F1, precision
    and recall, and AUROC given ``scores`` (probability of the positive class).
    """
    classes = list(classes)
    clusters = Clusters.of(units)
    if counts is None:
        counts = draw_counts(clusters.n, settings.resamples, settings.seed)
    k = len(classes) + 1  # + predictions outside the classes (confusion_stats)
    conf = (counts @ confusion_stats(y_true, y_pred, classes, clusters)).reshape(len(counts), k, k)
    out = confusion_scores(conf, classes.index(positive) if positive is not None else None)
    out["per_class_recall"] = out["per_class_recall"][:, :-1]
    if positive is not None and scores is not None:
        out["auroc"] = auroc_resamples(np.asarray(y_true) == positive, np.asarray(scores, float), clusters, counts)
    return out, clusters


# ---------------------------------------------------------------- regression

_MOMENTS = ("n", "t", "p", "tt", "pp", "tp", "abs", "sq")


def moment_stats(y_true: Sequence[float], y_pred: Sequence[float], clusters: Clusters) -> np.ndarray:
    """Per-cluster sums [clusters, 8]: n, Σt, Σp, Σt², Σp², Σtp, Σ|t−p|, Σ(t−p)².

    Both series are shifted by the mean of ``y_true`` first (CCC, Pearson and the errors are
    invariant under a common shift), which keeps the moment formulas accurate.
    """
    t, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    c = t.mean() if t.size else 0.0
    t, p = t - c, p - c
    return clusters.sums(np.stack([np.ones_like(t), t, p, t * t, p * p, t * p, np.abs(t - p), (t - p) ** 2], axis=1))


def moment_scores(sums: np.ndarray) -> dict[str, np.ndarray]:
    """CCC, Pearson r, MAE and RMSE from summed moments [B, 8] (population moments, as metrics.py)."""
    n, st, sp, stt, spp, stp, sabs, ssq = sums.T
    with np.errstate(divide="ignore", invalid="ignore"):
        mt, mp = st / n, sp / n
        vt, vp, cov = stt / n - mt**2, spp / n - mp**2, stp / n - mt * mp
        denom = vt + vp + (mt - mp) ** 2
        ok = (n >= 2) & (denom > 0)
        tiny = 1e-12 * np.maximum(stt / n, 1e-300)  # a variance at rounding level counts as zero, as metrics.py's std > 0
        return {
            "ccc": np.where(ok, 2 * cov / np.where(ok, denom, 1), np.nan),
            "pearson": np.where((n >= 2) & (vt > tiny) & (vp > tiny), cov / np.sqrt(np.abs(vt * vp)), np.nan),
            "mae": np.where(n > 0, sabs / n, np.nan),
            "rmse": np.where(n > 0, np.sqrt(np.abs(ssq / n)), np.nan),
        }


def regression_resamples(
    y_true: Sequence[float], y_pred: Sequence[float], units: Sequence, counts: np.ndarray | None = None,
    *, settings: UncertaintySettings = DEFAULT,
) -> tuple[dict[str, np.ndarray], Clusters]:
    """CCC, Pearson, MAE and RMSE on every cluster-bootstrap resample: {metric: [B]}."""
    clusters = Clusters.of(units)
    if counts is None:
        counts = draw_counts(clusters.n, settings.resamples, settings.seed)
    return moment_scores(counts @ moment_stats(y_true, y_pred, clusters)), clusters


# ---------------------------------------------------------------- paired comparisons


@dataclass(frozen=True)
class PairedData:
    """Two systems' per-cluster sufficient statistics on the same items, and how to score them.

    ``stats_a``/``stats_b`` are [clusters, S] (a multi-seed system: the mean over its seeds, which
    makes UAR and WAR exactly the seed-mean's, since they are linear in the confusion for fixed true
    labels); ``score`` maps summed statistics [B, S] to the compared metric [B].
    """

    stats_a: np.ndarray
    stats_b: np.ndarray
    score: Callable[[np.ndarray], np.ndarray]
    clusters: Clusters


def metric_scorer(kind: str, metric: str, n_classes: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The function from summed statistics to ``metric`` for ``kind`` classification|regression."""
    if kind == "classification":
        k = int(n_classes) + 1  # confusion_stats' extra column: predictions outside the classes
        return lambda s: confusion_scores(s.reshape(len(s), k, k))[metric]
    return lambda s: moment_scores(s)[metric]


def paired_test(data: PairedData, settings: UncertaintySettings = DEFAULT) -> dict:
    """Difference a − b of the metric: point value, paired cluster-bootstrap interval, permutation p.

    The bootstrap resamples clusters once for both systems (the pairing). The permutation test
    swaps whole clusters' predictions between the systems (each with probability 1/2) and counts
    permuted absolute differences at least as large as the observed one: p = (1 + count) / (1 + P).
    """
    a, b, g = data.stats_a, data.stats_b, data.clusters.n
    diff = float(data.score(a.sum(0, keepdims=True))[0] - data.score(b.sum(0, keepdims=True))[0])
    out: dict = {"diff": diff, "clusters": g}
    if settings.resamples:
        counts = draw_counts(g, settings.resamples, settings.seed)
        out["ci"] = interval(data.score(counts @ a) - data.score(counts @ b), settings.level)
    if settings.permutations:
        rng = np.random.default_rng(settings.seed + 1)
        delta, total_a, total_b = b - a, a.sum(0), b.sum(0)
        hits = 0
        for start in range(0, settings.permutations, CHUNK * 4):
            flip = rng.integers(0, 2, size=(min(CHUNK * 4, settings.permutations - start), g)).astype(float)
            moved = flip @ delta
            perm = data.score(total_a + moved) - data.score(total_b - moved)
            hits += int(np.sum(np.abs(perm) >= abs(diff) - 1e-12))
        out["p_permutation"] = (1 + hits) / (1 + settings.permutations)
    return out


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict:
    """McNemar's exact test on paired per-item correctness: binomial test of the discordant pairs.

    Items are treated as independent (McNemar's assumption); the permutation test above is the
    one that respects clusters.
    """
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    p = 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return {"only_a": only_a, "only_b": only_b, "p_mcnemar": p}


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (None entries are skipped and kept None).

    Sorted ascending, the i-th smallest of m p-values becomes max_{j<=i} min(1, (m − j + 1) p_(j)).
    """
    idx = [i for i, p in enumerate(pvalues) if p is not None and np.isfinite(p)]
    out: list[float | None] = [None] * len(pvalues)
    m = len(idx)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        out[i] = running
    return out
