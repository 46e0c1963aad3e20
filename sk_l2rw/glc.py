"""Gold Loss Correction (Hendrycks, Mazeika, Wilson, Gimpel, NeurIPS 2018).

GLC assumes noise that depends on the true class only: a row of class ``i`` gets
the noisy label ``j`` with probability ``C[i, j]``, whatever its features. A model
fitted on the noisy rows estimates ``P(noisy = j | x)``; averaged over the trusted
rows of true class ``i`` it estimates ``C[i, :]`` (:func:`corruption_matrix`).
Then either

- **plug-in** (any estimator with ``predict_proba``): ``P(noisy | x) = C^T P(true | x)``,
  so ``P(true | x)`` is recovered by solving with ``C`` (:func:`correct_proba`); or
- **loss** (a skorch net): a fresh net is trained on the noisy rows with the
  forward-corrected loss ``-log sum_k softmax(g(x))_k C[k, y_noisy]`` and on the
  trusted rows with ordinary cross-entropy (:class:`ForwardCorrectedLoss`).
"""

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone

from sk_l2rw.trusted import (LabelPredictMixin, check_trusted_fit, class_proba,
                             default_estimator, split_trusted)

__all__ = ["ForwardCorrectedLoss", "GLCClassifier", "corruption_matrix", "correct_proba"]


def corruption_matrix(proba, y_true, n_classes):
    """GLC's estimate of the corruption matrix.

    Parameters
    ----------
    proba : array-like of shape (n_trusted, n_classes)
        The noisy model's ``P(noisy = j | x)`` on the trusted rows.
    y_true : array-like of int, shape (n_trusted,)
        Their trusted labels, as codes ``0..n_classes-1``.
    n_classes : int

    Returns
    -------
    C : numpy.ndarray of shape (n_classes, n_classes)
        ``C[i, j]``: mean of ``proba[:, j]`` over the trusted rows of class ``i``.

    Raises
    ------
    ValueError
        A class with no trusted row (its row of ``C`` would be undefined).
    """
    proba = np.asarray(proba, dtype=float)
    y_true = np.asarray(y_true, dtype=int)
    counts = np.bincount(y_true, minlength=n_classes)
    if (counts == 0).any():
        raise ValueError(f"GLC needs a trusted row of every class; classes "
                         f"{np.flatnonzero(counts == 0).tolist()} have none")
    sums = np.zeros((n_classes, n_classes))
    np.add.at(sums, y_true, proba)
    return sums / counts[:, None]


def correct_proba(proba_noisy, corruption):
    """``P(true | x)`` from ``P(noisy | x)``: the plug-in correction.

    Solves ``p_noisy = p_true @ C`` in the least-squares sense (the pseudo-inverse,
    so that a singular estimate still gives an answer), clips negative
    probabilities to 0 and renormalises. A row whose correction is all zero keeps
    its noisy probabilities.

    Parameters
    ----------
    proba_noisy : array-like of shape (n_samples, n_classes)
    corruption : array-like of shape (n_classes, n_classes)

    Returns
    -------
    numpy.ndarray of shape (n_samples, n_classes)
        Rows sum to 1.
    """
    proba_noisy = np.asarray(proba_noisy, dtype=float)
    corrected = np.clip(proba_noisy @ np.linalg.pinv(np.asarray(corruption, float)), 0,
                        None)
    total = corrected.sum(axis=1, keepdims=True)
    ok = total[:, 0] > 0
    corrected[ok] /= total[ok]
    corrected[~ok] = proba_noisy[~ok]
    return corrected


class ForwardCorrectedLoss(torch.nn.Module):
    """GLC's training loss for a net that outputs logits.

    Targets ``t < K`` are noisy labels and get the forward-corrected loss
    ``-log sum_k softmax(logits)_k C[k, t]``; targets ``t >= K`` are trusted
    labels ``t - K`` and get ordinary cross-entropy. The mean is over all rows.

    Parameters
    ----------
    corruption : array-like of shape (K, K)
        The estimated corruption matrix.
    """

    def __init__(self, corruption):
        super().__init__()
        C = torch.as_tensor(np.asarray(corruption, dtype=np.float64))
        # log of 0 is -inf, which logsumexp handles; a whole column of zeros would
        # make a noisy label impossible, so entries are kept above a tiny floor.
        self.register_buffer("log_corruption", torch.log(C.clamp_min(1e-12)))

    def forward(self, logits, target):
        K = logits.shape[1]
        log_p = torch.log_softmax(logits, dim=1)
        target = target.long()
        trusted = target >= K
        label = torch.where(trusted, target - K, target)
        log_C = self.log_corruption.to(log_p.dtype)
        noisy = -torch.logsumexp(log_p + log_C[:, label].T, dim=1)
        clean = -log_p.gather(1, label[:, None])[:, 0]
        return torch.where(trusted, clean, noisy).mean()


def _softmax(logits):
    return torch.softmax(logits, dim=-1)


def is_plain_skorch_classifier(estimator):
    """A skorch ``NeuralNetClassifier`` that is not an L2RW net: what GLC's loss
    correction retrains."""
    from skorch import NeuralNetClassifier

    from sk_l2rw.net import L2RWMixin

    return isinstance(estimator, NeuralNetClassifier) and not isinstance(
        estimator, L2RWMixin)


class GLCClassifier(LabelPredictMixin, MetaEstimatorMixin, ClassifierMixin,
                    BaseEstimator):
    """Gold Loss Correction around any classifier (Hendrycks et al., NeurIPS 2018).

    1. ``estimator`` is fitted on the untrusted rows (their noisy labels).
    2. The corruption matrix ``C`` is estimated from its probabilities on the
       trusted rows (:func:`corruption_matrix`).
    3. ``correction="plugin"``: predictions are the noisy model's probabilities
       corrected by ``C`` (:func:`correct_proba`). ``correction="loss"``: a fresh
       clone of a skorch ``NeuralNetClassifier`` is trained on every row with
       :class:`ForwardCorrectedLoss` and predicts directly.

    GLC assumes that the noise depends on the true class only (not on the row's
    features) and needs trusted rows of every class; its estimate of ``C`` is
    only as good as the noisy model's probabilities.

    Parameters
    ----------
    estimator : classifier or None, default=None
        Has ``predict_proba``. None:
        ``HistGradientBoostingClassifier(early_stopping=True)``. For
        ``correction="loss"``, a skorch ``NeuralNetClassifier`` whose module
        outputs logits (its criterion is replaced by the corrected loss).
    correction : {"auto", "plugin", "loss"}, default="auto"
        "auto": "loss" for a skorch ``NeuralNetClassifier``, "plugin" otherwise.

    Attributes
    ----------
    noisy_estimator_ : classifier
        Fitted on the untrusted rows.
    estimator_ : classifier
        Predicts: ``noisy_estimator_`` (plugin) or the corrected net (loss).
    corruption_ : numpy.ndarray of shape (n_classes, n_classes)
        The estimated ``C``; rows and columns in the order of ``classes_``.
    correction_ : str
        "plugin" or "loss".
    classes_ : numpy.ndarray
    n_features_in_ : int
        When the estimator records it.

    References
    ----------
    D. Hendrycks, M. Mazeika, D. Wilson, K. Gimpel, "Using Trusted Data to Train
    Deep Networks on Labels Corrupted by Severe Noise", NeurIPS 2018.

    Examples
    --------
    >>> from sklearn.ensemble import HistGradientBoostingClassifier
    >>> from sk_l2rw import GLCClassifier
    >>> clf = GLCClassifier(HistGradientBoostingClassifier())
    >>> # clf.fit(X, y, trusted=mask).predict(X_test)
    """

    __metadata_request__fit = {"trusted": True}

    def __init__(self, estimator=None, *, correction="auto"):
        self.estimator = estimator
        self.correction = correction

    def _check_params(self):
        estimator = default_estimator(self.estimator)
        if self.correction not in ("auto", "plugin", "loss"):
            raise ValueError(f"correction must be 'auto', 'plugin' or 'loss'; got "
                             f"{self.correction!r}")
        net = is_plain_skorch_classifier(estimator)
        correction = ("loss" if net else "plugin") if self.correction == "auto" else (
            self.correction)
        if correction == "loss":
            if not net:
                raise TypeError(
                    "correction='loss' trains a skorch NeuralNetClassifier with the "
                    f"corrected loss; got {type(estimator).__name__}: use "
                    "correction='plugin' for other classifiers")
            if not isinstance(estimator.criterion, type) or not issubclass(
                    estimator.criterion, torch.nn.CrossEntropyLoss):
                raise TypeError(
                    "correction='loss' needs a net whose module outputs logits, trained "
                    "with criterion=torch.nn.CrossEntropyLoss; got criterion "
                    f"{estimator.criterion!r}")
        elif not hasattr(estimator, "predict_proba"):
            raise TypeError(f"GLC needs predict_proba; {type(estimator).__name__} has "
                            "none")
        return estimator, correction

    def fit(self, X, y, *, trusted):
        """Fit the noisy model, estimate ``C``, and correct.

        Parameters
        ----------
        X : array-like, DataFrame or sparse matrix of shape (n_samples, n_features)
            The trusted and the untrusted rows together.
        y : array-like of shape (n_samples,)
            Each row's label: noisy on the untrusted rows, true on the trusted ones.
        trusted : array-like of bool, shape (n_samples,)
            True for the rows whose labels are trusted. ``C`` is estimated on them,
            so every class needs at least one (ValueError otherwise).

        Returns
        -------
        self
        """
        estimator, correction = self._check_params()
        mask, classes, codes, missing = check_trusted_fit(X, y, trusted)
        if missing.size:
            raise ValueError(f"GLC needs a trusted row of every class; classes "
                             f"{missing.tolist()} have none")
        K = len(classes)
        X_noisy, y_noisy, X_trusted, y_trusted = split_trusted(X, codes, mask)
        noisy = clone(estimator)
        if correction == "loss":
            noisy.set_params(classes=list(range(K)))
        noisy.fit(X_noisy, y_noisy)
        corruption = corruption_matrix(class_proba(noisy, X_trusted, K), y_trusted, K)
        final = noisy
        if correction == "loss":
            final = clone(estimator).set_params(
                criterion=ForwardCorrectedLoss, criterion__corruption=corruption,
                classes=list(range(K)), predict_nonlinearity=_softmax)
            final.fit(X, np.where(mask, codes + K, codes).astype(np.int64))
        self.noisy_estimator_, self.estimator_ = noisy, final
        self.corruption_, self.correction_, self.classes_ = corruption, correction, classes
        if hasattr(noisy, "n_features_in_"):
            self.n_features_in_ = noisy.n_features_in_
        return self

    def _proba(self, X):
        """``P(true class | x)``: the plug-in correction of the noisy model's
        probabilities, or the corrected net's own."""
        proba = class_proba(self.estimator_, X, len(self.classes_))
        if self.correction_ == "plugin":
            return correct_proba(proba, self.corruption_)
        return proba
