"""Solving linear and kernel probes in the N×N Gram space of the training data when D ≫ N.

A ComParE probe sees N ≈ 500 training utterances of D = 6373 features. Every model here is fitted
on the Gram matrix ``G = Z Zᵀ`` of the (standardised) training features ``Z`` [N, D] instead of on
``Z`` itself, which is exact, not an approximation:

- **L2-penalised linear models** (logistic regression, linear SVM): the optimal weights lie in the
  row span of ``Z`` (the gradient of the data term is a combination of training rows, and the
  penalty only grows outside the span; the intercept is not penalised by lbfgs and is a column of
  ones for liblinear — neither leaves the span). With ``G = U S² Uᵀ`` the training rows in an
  orthonormal basis of that span are ``R = U S`` [N, r], r ≤ N, and any other row ``z`` has the
  coordinates ``z Zᵀ U S⁻¹``. ``R Rᵀ = G``, so every inner product, norm and therefore every
  solver iterate of the reference implementation is the same (up to rounding) as on ``Z``;
  weights ``w̃`` found on ``R`` are ``w = w̃ S⁻¹ Uᵀ Z`` in feature space. :class:`TrainingSpan`.
- **Kernel SVMs** (scikit-learn's ``SVC``): libsvm only ever reads kernel values, so the kernel is
  computed once per grid value from ``G`` (linear) or from squared distances ``‖a‖² + ‖b‖² − 2 a·b``
  (RBF, one matrix product for the whole C × gamma grid) and passed as ``kernel='precomputed'``.
  :func:`rbf_from_sqdist` and :class:`KernelSVM`.

The cost of one fit becomes that of an [N, N] problem; the one [N, D] × [D, N] product is shared
by the whole grid. Agreement with the reference fits on ``Z`` is tested in ``tests/test_probe_svm.py``
and measured by ``benchmarks/probe_fast.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

RANK_TOL = 1e-10  # eigenvalues below this fraction of the largest are rounding noise, not directions
SINGLE_THREAD_N = 2000  # up to this many training items the Gram path runs single-threaded BLAS


def small_problem_blas(n_train: int):
    """One BLAS thread for a Gram-space fit of up to ``SINGLE_THREAD_N`` items (else a no-op).

    Such fits are many tiny BLAS calls (L-BFGS steps on an [N, r] problem, Platt scaling) and an
    [N, D] × [D, N] product of a few GFLOP at most: extra BLAS threads only add hand-offs, and on a
    busy machine they cost far more than they save (measured on a loaded 2-core box: scipy's
    L-BFGS-B at n=300 takes 6 ms per iteration with 2 OpenBLAS threads, 0.1 ms with one).
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1 if n_train <= SINGLE_THREAD_N else None, user_api="blas")


class TrainingSpan:
    """An orthonormal basis of the row span of training features ``Z`` [N, D], through its Gram matrix.

    ``coords`` are the training rows in that basis ([N, r]); :meth:`transform` maps other rows
    into it; :meth:`to_features` maps weights found in the span back to feature space ([.., D]).
    """

    def __init__(self, Z: np.ndarray):
        self.Z = np.asarray(Z, np.float64)
        gram = self.Z @ self.Z.T
        w, U = np.linalg.eigh(gram)
        keep = w > max(float(w.max()), 0.0) * RANK_TOL
        if not keep.any():  # every training row is the zero vector (e.g. constant features after scaling)
            keep = w >= w.max()
        self.U, self.s = U[:, keep], np.sqrt(np.clip(w[keep], 1e-300, None))
        self.coords = self.U * self.s  # R = U S, R Rᵀ = G
        self.rank = int(keep.sum())

    def transform(self, Z_other: np.ndarray) -> np.ndarray:
        """Coordinates of other (standardised) rows in the span: ``z Zᵀ U S⁻¹`` [n, r]."""
        return (np.asarray(Z_other, np.float64) @ self.Z.T) @ (self.U / self.s)

    def to_features(self, weights: np.ndarray) -> np.ndarray:
        """Span weights [.., r] as feature-space weights [.., D]: ``w̃ S⁻¹ Uᵀ Z``."""
        return (np.asarray(weights, np.float64) @ (self.U / self.s).T) @ self.Z


def sq_norms(A: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", A, A)


def sqdist(A: np.ndarray, B: np.ndarray, cross: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distances [len(A), len(B)] from one matrix product (``cross`` = A Bᵀ if known)."""
    cross = A @ B.T if cross is None else cross
    return np.maximum(sq_norms(A)[:, None] + sq_norms(B)[None, :] - 2.0 * cross, 0.0)


def rbf_from_sqdist(d2: np.ndarray, gamma: float) -> np.ndarray:
    return np.exp(-gamma * d2)


def scale_gamma(Z: np.ndarray) -> float:
    """scikit-learn's ``gamma='scale'``: 1 / (n_features · Z.var()) (1 when the variance is 0)."""
    var = float(np.asarray(Z, np.float64).var())
    return 1.0 / (Z.shape[1] * var) if var > 0 else 1.0


class FittedSVM:
    """A fitted SVC (predictions) and its probability calibrator, used like any fitted classifier:
    subclasses say what the SVC sees of raw rows (:meth:`inputs`)."""

    svc: Any
    calibrated: Any

    def inputs(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def classes_(self) -> np.ndarray:
        return self.svc.classes_

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.svc.predict(self.inputs(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.calibrated.predict_proba(self.inputs(X))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.svc.decision_function(self.inputs(X))


class KernelSVM(FittedSVM):
    """A fitted ``SVC(kernel='precomputed')`` (and its probability calibrator) that predicts raw rows.

    It keeps the scaler and the standardised training rows (float32: what the test kernel is
    computed against; scikit-learn's own ``SVC`` keeps its support vectors, in float64) and builds
    the kernel of new rows against them, so it is used like any fitted classifier.
    """

    def __init__(self, svc: Any, calibrated: Any, Z_train: np.ndarray, kernel: str, gamma: float | None,
                 scaler: Any = None):
        self.svc, self.calibrated, self.kernel, self.gamma, self.scaler = svc, calibrated, kernel, gamma, scaler
        self.Z = np.asarray(Z_train, np.float32)

    def gram(self, X: np.ndarray) -> np.ndarray:
        """Kernel of rows ``X`` (scaled first when a scaler was given) against the training rows."""
        Z = np.asarray(X if self.scaler is None else self.scaler.transform(X), np.float64)
        train = self.Z.astype(np.float64)
        cross = Z @ train.T
        return cross if self.kernel == "linear" else rbf_from_sqdist(sqdist(Z, train, cross), self.gamma)

    inputs = gram
